"""The Ray engine on a real two-node cluster: both nodes work, a node dies mid-run, the
driver dies mid-run, and the outcome equals a local run, exactly once every time."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_run_cli import cli_env, command, finished_count, gem  # noqa: E402
from test_runner_helpers import (  # noqa: E402
    CALLS_PER_KEPT,
    document,
    fast_settings,
    respond,
    settings_toml,
    write_jsonl,
)

from gem_graph.demo import default_demo_dir, demo_settings, load_demo_model  # noqa: E402
from gem_graph.llm import make_chat_model  # noqa: E402
from gem_graph.run.corpus import read_corpus  # noqa: E402
from gem_graph.run.options import RunError  # noqa: E402
from gem_graph.run.runner import RunOptions, RunSummary, run_corpus  # noqa: E402
from gem_graph.run.store import RunStore  # noqa: E402
from gem_graph.settings import Settings  # noqa: E402
from gem_graph.testing.openai_server import LoopbackOpenAIServer  # noqa: E402


def demo_model(settings: Settings) -> Any:
    """The demo's scripted model, built in each actor (pickled by value: see below)."""
    return load_demo_model()


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of the record without its wall-clock timings (`usage.<stage>.seconds`)."""
    usage = {
        stage: {k: v for k, v in values.items() if k != "seconds"}
        for stage, values in (record.get("usage") or {}).items()
    }
    timeless = {**record, "usage": usage}
    return hashlib.sha256(json.dumps(timeless, sort_keys=True).encode()).hexdigest()


def outcome(run_dir: Path) -> dict[str, Any]:
    """What a run left in its store: each document's status and stage, the kept ids, the
    record hashes, the runs per document, and the engine's notes."""
    with RunStore(run_dir) as store:
        assert store.integrity_check() == "ok"
        docs = list(store.iter_documents())
        records = list(store.iter_records())
        engine = store.get_meta("engine") or {}
    return {
        "documents": sorted((d["id"], d["status"], d["stage"]) for d in docs),
        "kept": sorted(d["id"] for d in docs if d["status"] == "kept"),
        "records": sorted(record_digest(r) for r in records),
        "runs": {d["runs"] for d in docs},
        "engine": engine,
    }


async def run(corpus: Path, run_dir: Path, settings: Settings, **kwargs: Any) -> RunSummary:
    return await run_corpus(
        read_corpus(corpus),
        llm=make_chat_model(settings.model),
        settings=settings,
        options=RunOptions(run_dir=run_dir, progress=False),
        **kwargs,
    )


async def test_a_run_on_two_nodes_uses_both_and_equals_a_local_run(two_nodes: Any, tmp_path: Path):
    rows: list[dict | str] = [document(i, news=i % 4 == 0) for i in range(12)]
    rows += ["{not json", document(3)]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    with LoopbackOpenAIServer(respond, latency_s=0.05) as server:
        settings = fast_settings(base_url=server.base_url).updated(run={"concurrency": 4})
        local = await run(corpus, tmp_path / "local", settings)
        on_ray = await run(
            corpus,
            tmp_path / "ray",
            settings.updated(run={"engine": "ray", "ray_address": two_nodes.address}),
        )
    assert (on_ray.kept, on_ray.rejected, on_ray.failed, on_ray.stopped_reason) == (
        local.kept,
        local.rejected,
        0,
        None,
    )
    mine, theirs = outcome(tmp_path / "ray"), outcome(tmp_path / "local")
    for key in ("documents", "kept", "records"):
        assert mine[key] == theirs[key], key
    assert mine["runs"] == {1}
    assert len(mine["kept"]) == 9
    by_node = mine["engine"]["documents_by_node"]
    assert len(by_node) == 2 and all(n > 0 for n in by_node.values()), by_node
    assert sum(by_node.values()) == 12  # the duplicate and the bad line stay in the driver


async def test_execution_on_the_cluster_equals_a_local_run(two_nodes: Any, tmp_path):
    """The demo corpus with the sandbox on: actors run tool code on both nodes."""
    corpus = default_demo_dir() / "corpus.jsonl"
    settings = demo_settings()
    local = await run_corpus(
        read_corpus(corpus),
        llm=load_demo_model(),
        settings=settings,
        options=RunOptions(run_dir=tmp_path / "local", progress=False, preflight=False),
    )
    on_ray = await run_corpus(
        read_corpus(corpus),
        llm=load_demo_model(),
        settings=settings.updated(run={"engine": "ray", "ray_address": two_nodes.address}),
        options=RunOptions(run_dir=tmp_path / "ray", progress=False, preflight=False),
        model_factory=demo_model,
    )
    assert local.kept > 0 and (on_ray.kept, on_ray.failed) == (local.kept, 0)
    mine, theirs = outcome(tmp_path / "ray"), outcome(tmp_path / "local")
    for key in ("documents", "kept", "records"):
        assert mine[key] == theirs[key], key
    assert len(mine["engine"]["documents_by_node"]) == 2
    envs = sorted(p.name for p in (tmp_path / "ray" / "environments").iterdir())
    assert envs == sorted(p.name for p in (tmp_path / "local" / "environments").iterdir())


async def test_a_node_killed_mid_run_leaves_every_document_done_exactly_once(
    two_nodes: Any, tmp_path: Path
):
    n = 30
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(n)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond, latency_s=0.1) as server:
        settings = fast_settings(base_url=server.base_url).updated(
            run={"concurrency": 4, "engine": "ray", "ray_address": two_nodes.address}
        )

        async def kill_when_started() -> int:
            while finished_count(run_dir) < 4:
                await asyncio.sleep(0.05)
            two_nodes.kill_second()
            return finished_count(run_dir)

        killer = asyncio.create_task(kill_when_started())
        result = await run(corpus, run_dir, settings)
        done_at_kill = await killer
    assert done_at_kill < n
    assert (result.kept, result.failed, result.stopped_reason) == (n, 0, None)
    mine = outcome(run_dir)
    assert mine["kept"] == [f"doc-{i:04d}" for i in range(n)]
    assert mine["runs"] == {1}
    assert len(mine["records"]) == n
    engine = mine["engine"]
    assert engine["actor_deaths"] == 1
    assert engine["documents_sent_again"] >= 1  # the dead node's in-flight documents
    assert sum(engine["documents_by_node"].values()) == n


def test_the_driver_killed_mid_run_resumes_exactly_once(two_nodes: Any, tmp_path: Path):
    n = 24
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(n)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond, latency_s=0.1) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        args = ("run", corpus, "-o", run_dir, "--settings", toml, "--concurrency", "4")
        args += ("--engine", "ray", "--ray-address", two_nodes.address, "--quiet", "--no-cache")
        victim = subprocess.Popen(
            command(*args), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while finished_count(run_dir) < 6 and time.monotonic() < deadline:
            assert victim.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        done_before = finished_count(run_dir)
        assert 6 <= done_before < n
        # The dead driver's actors are ended by Ray within a moment; their last calls
        # (documents in flight, never stored) are not the re-run's.
        requests_before = -1
        deadline = time.monotonic() + 30
        while requests_before != len(server.requests) and time.monotonic() < deadline:
            requests_before = len(server.requests)
            time.sleep(1.0)

        resumed = gem(*args, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        lines = resumed.stderr.splitlines()  # nothing from Ray, no traceback
        assert len(lines) == 1 and lines[0].startswith(f"resuming {run_dir}: skipping "), lines
        new_requests = len(server.requests) - requests_before
    # Only the documents not yet stored are asked for again (plus those in flight at the kill).
    assert new_requests <= (n - done_before) * CALLS_PER_KEPT
    mine = outcome(run_dir)
    assert mine["kept"] == [f"doc-{i:04d}" for i in range(n)]
    assert mine["runs"] == {1}
    assert len(mine["records"]) == n


async def test_a_node_without_the_sandbox_tier_is_one_error_naming_it(
    two_nodes: Any, tmp_path: Path
):
    from gem_graph.sandbox.probe import probe

    if probe()["tiers"]["strict"] is True:
        pytest.skip("this machine can give the strict tier")
    settings = demo_settings("strict").updated(
        run={"engine": "ray", "ray_address": two_nodes.address}
    )
    with pytest.raises(RunError) as raised:
        await run_corpus(
            read_corpus(default_demo_dir() / "corpus.jsonl"),
            llm=load_demo_model(),
            settings=settings,
            options=RunOptions(run_dir=tmp_path / "run", progress=False, preflight=False),
            model_factory=demo_model,
        )
    message = str(raised.value)
    assert message.startswith("Ray node ") and "(node " in message, message
    assert "cannot give the sandbox tier 'strict'" in message
    assert "\n" not in message
    with RunStore(tmp_path / "run") as store:
        assert store.finished_ids() == set()  # nothing ran at a lower tier
