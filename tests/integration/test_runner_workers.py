"""`run.workers > 1`: the same run on a local Ray with that many actors sharing one store."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_runner_helpers import CALLS_PER_KEPT, document, fast_settings, respond, write_jsonl

from gem_graph.llm import make_chat_model
from gem_graph.run import engine
from gem_graph.run.corpus import read_corpus
from gem_graph.run.options import RunError
from gem_graph.run.runner import RunOptions, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.testing.openai_server import LoopbackOpenAIServer


def corpus_rows() -> list[dict | str]:
    rows: list[dict | str] = [document(i, news=i % 4 == 0) for i in range(14)]
    rows.append("{not json")  # a bad input line is a reject at stage `input`, once
    rows.append(document(3))  # a duplicate id, also rejected once
    return rows


def test_workers_means_the_ray_engine_and_without_ray_says_how_to_install_it(monkeypatch):
    settings = fast_settings()
    assert engine.engine_of(settings) == "local"
    assert engine.engine_of(settings.updated(run={"workers": 2})) == "ray"
    assert engine.engine_of(settings.updated(run={"engine": "ray"})) == "ray"
    monkeypatch.setattr(engine.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RunError, match=r"pip install 'gem-graph\[ray\]'"):
        engine.require_ray()


async def test_two_workers_process_every_document_once_with_the_counts_of_one(tmp_path: Path):
    pytest.importorskip("ray")
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows())
    with LoopbackOpenAIServer(respond) as server:
        settings = fast_settings(base_url=server.base_url).updated(
            run={"concurrency": 4}, model={"probe": False}
        )
        one = await run_corpus(
            read_corpus(corpus),
            llm=make_chat_model(settings.model),
            settings=settings,
            options=RunOptions(run_dir=tmp_path / "one", progress=False),
        )
        requests_one = len(server.requests)
        two = await run_corpus(
            read_corpus(corpus),
            llm=make_chat_model(settings.model),
            settings=settings.updated(run={"workers": 2}),
            options=RunOptions(run_dir=tmp_path / "two", progress=False),
        )
        requests_two = len(server.requests) - requests_one
    assert (two.processed, two.kept, two.rejected, two.failed, two.stopped_reason) == (
        one.processed,
        one.kept,
        one.rejected,
        0,
        None,
    )
    assert (two.kept, two.rejected) == (10, 6)
    assert requests_two == requests_one == 10 * CALLS_PER_KEPT + 4
    with RunStore(tmp_path / "one") as store:
        expected = sorted((d["id"], d["status"], d["stage"]) for d in store.iter_documents())
    with RunStore(tmp_path / "two") as store:
        assert store.integrity_check() == "ok"
        docs = list(store.iter_documents())
        records = list(store.iter_records())
        summary = store.summary()
        engine_meta = store.get_meta("engine")
    assert sorted((d["id"], d["status"], d["stage"]) for d in docs) == expected
    assert {d["runs"] for d in docs} == {1}
    assert len(records) == len({r["id"] for r in records}) == 10
    assert summary["documents"] == {"total": 16, "kept": 10, "rejected": 6, "failed": 0}
    assert engine_meta["actors"] == 2 and engine_meta["where"] == "a local Ray with 2 CPU(s)"
    assert sum(engine_meta["documents_by_node"].values()) == 14


def test_the_llm_cache_is_the_runs_own_on_the_drivers_machine_and_per_machine_elsewhere(
    tmp_path: Path, monkeypatch
):
    import socket

    from gem_graph.run.ray_actor import node_cache_file

    monkeypatch.setattr(socket, "gethostname", lambda: "node-b.cluster")
    settings = fast_settings().updated(run={"cache": True})
    run_dir = tmp_path / "run"
    assert node_cache_file(settings, run_dir, "node-b.cluster") == run_dir / "llm_cache.sqlite"
    assert node_cache_file(settings, run_dir, "driver") == (
        run_dir / "llm_cache.node-b.cluster.sqlite"
    )
    shared = settings.updated(run={"cache": tmp_path / "c" / "shared.sqlite"})
    assert node_cache_file(shared, run_dir, "driver") == tmp_path / "c/shared.node-b.cluster.sqlite"
    assert node_cache_file(settings.updated(run={"cache": False}), run_dir, "driver") is None
