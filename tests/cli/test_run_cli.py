"""`gem-graph run` and `gem-graph stats` as real subprocesses against a loopback server."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gem_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_runner_helpers import (
    CALLS_PER_KEPT,
    document,
    respond,
    settings_toml,
    stage_requests,
    write_jsonl,
)

from gem_graph.run.store import RunStore
from gem_graph.testing.openai_server import LoopbackOpenAIServer

PACKAGE_ROOT = Path(gem_graph.__file__).resolve().parent.parent
SECRET = "sk-test-do-not-store-4242"


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "OPENAI_API_KEY": SECRET}


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "gem_graph.cli", *map(str, args)]


def gem(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, env=cli_env(), check=False
    )


def finished_count(run_dir: Path) -> int:
    path = run_dir / "run.sqlite"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_a_run_killed_with_sigkill_resumes_with_every_document_exactly_once(tmp_path):
    n = 20
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(n)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond, latency_s=0.05) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        args = ("run", corpus, "-o", run_dir, "--settings", toml, "--concurrency", "3", "--quiet")
        args += ("--no-cache",)
        victim = subprocess.Popen(
            command(*args), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while finished_count(run_dir) < 5 and time.monotonic() < deadline:
            assert victim.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        done_before = finished_count(run_dir)
        assert 5 <= done_before < n
        requests_before = len(stage_requests(server))

        resumed = gem(*args)
        assert resumed.returncode == 0, resumed.stderr
        new_requests = len(stage_requests(server)) - requests_before
    # Only unfinished documents were asked for again (at most 3 were in flight when killed).
    assert new_requests <= (n - done_before) * CALLS_PER_KEPT
    with RunStore(run_dir) as store:
        docs = list(store.iter_documents())
        records = list(store.iter_records())
        assert store.integrity_check() == "ok"
    assert sorted(d["id"] for d in docs) == [f"doc-{i:04d}" for i in range(n)]
    assert {d["status"] for d in docs} == {"kept"}
    assert {d["runs"] for d in docs} == {1}
    assert sorted(r["source"]["doc_id"] for r in records) == [f"doc-{i:04d}" for i in range(n)]
    assert len({r["id"] for r in records}) == n
    # The API key came from the environment and is stored nowhere.
    for path in run_dir.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_settings_mismatch_is_refused_then_accepted_when_forced(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0), document(1, news=True)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        first = gem("run", corpus, "-o", run_dir, "--settings", toml, "--quiet")
        assert first.returncode == 0, first.stderr
        assert "Yield per stage" in first.stdout
        changed = gem("run", corpus, "-o", run_dir, "--settings", toml, "--attempts", "ground=5")
        assert changed.returncode == 2
        assert changed.stderr.startswith("gem-graph: error: ")
        assert "attempts.ground: 3 → 5" in changed.stderr
        assert "--force-new-settings" in changed.stderr
        assert "Traceback" not in changed.stderr
        forced = gem(
            "run", corpus, "-o", run_dir, "--settings", toml, "--attempts", "ground=5",
            "--force-new-settings", "--quiet",
        )  # fmt: skip
        assert forced.returncode == 0, forced.stderr
        stats_json = gem("stats", run_dir, "--json")
    assert stats_json.returncode == 0
    for expected in ("Yield per stage", "irrelevant", "per kept trajectory", "execution off"):
        assert expected in first.stdout
    summary = json.loads(stats_json.stdout)
    assert summary["documents"] == {"total": 2, "kept": 1, "rejected": 1, "failed": 0}
    assert summary["sessions"] == 2


def test_an_endpoint_that_is_down_is_one_line_and_a_non_zero_exit(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(5)])
    started = time.monotonic()
    done = gem("run", corpus, "-o", tmp_path / "run", "--base-url", f"http://127.0.0.1:{port}/v1",
               "--no-execute")  # fmt: skip
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]]
    assert lines[0].startswith(f"gem-graph: error: cannot reach the model server at "
                               f"http://127.0.0.1:{port}/v1: ")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.jsonl",), "cannot read"),
        (("c.jsonl", "--settings", "bad.toml"), "not valid TOML"),
        (("c.jsonl", "--attempts", "ground"), "STAGE=N"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    write_jsonl(tmp_path / "c.jsonl", [document(0)])
    (tmp_path / "bad.toml").write_text("[model\n", encoding="utf-8")
    resolved = [str(tmp_path / a) if a.endswith((".jsonl", ".toml")) else a for a in args]
    done = gem("run", *resolved, "-o", tmp_path / "run")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_stats_on_a_folder_without_a_run_is_a_usage_error(tmp_path):
    done = gem("stats", tmp_path)
    assert done.returncode == 2 and "holds no run store" in done.stderr


def test_the_aiohttp_client_runs_closes_cleanly_and_is_not_an_output_setting(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(4)])
    more = write_jsonl(tmp_path / "more.jsonl", [document(i) for i in range(8)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        one = gem("run", corpus, "-o", run_dir, "--settings", toml)
        two = gem(  # httpx before, aiohttp now: a transport option, so not refused
            "run", more, "-o", run_dir, "--settings", toml, "--http-client", "aiohttp",
            "--quiet",
        )  # fmt: skip
        requests = len(stage_requests(server))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "Unclosed" not in two.stderr  # the aiohttp session was closed
    with RunStore(run_dir) as store:
        assert len(list(store.iter_records())) == 8
    assert requests == 8 * CALLS_PER_KEPT
