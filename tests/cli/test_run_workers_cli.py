"""`gem-graph run --workers 2` (a local Ray with two actors) as a real subprocess: kill and
resume, a down endpoint, no Ray process left behind, and the install hint without Ray."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_cli import cli_env, command, finished_count, gem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_runner_helpers import CALLS_PER_KEPT, document, settings_toml, write_jsonl
from test_runner_helpers import respond as answer

from gem_graph.run.store import RunStore
from gem_graph.testing.openai_server import Answer, Fault, LoopbackOpenAIServer


def children(pid: int) -> set[int]:
    """Pids of the live processes whose parent is `pid` (from /proc)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Ray's GCS, raylet, workers and agents)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()) - found:
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def wait_until_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def test_sigkill_of_the_parent_ends_the_workers_and_a_rerun_completes_exactly_once(tmp_path):
    pytest.importorskip("ray")
    n = 24
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(n)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(answer, latency_s=0.05) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        args = ("run", corpus, "-o", run_dir, "--settings", toml, "--concurrency", "4")
        args += ("--workers", "2", "--quiet", "--no-cache")
        victim = subprocess.Popen(
            command(*args), env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while finished_count(run_dir) < 6 and time.monotonic() < deadline:
            assert victim.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        workers = descendants(victim.pid)
        assert len(workers) >= 4  # GCS, raylet and the two actors at least
        agents = {pid for pid in workers if process_name(pid).endswith("Agent")}
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        # Ray's two per-node agents (dashboard, runtime env) are Ray's own: they notice on
        # their own that their raylet is gone and exit about a minute later; not waited for.
        left = wait_until_gone(workers - agents, 30)
        assert left == set(), f"Ray processes outlived their driver: {left}"
        done_before = finished_count(run_dir)
        assert 6 <= done_before < n
        requests_before = len(server.requests)

        resumed = gem(*args, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        lines = resumed.stderr.splitlines()  # nothing from Ray, no traceback
        assert len(lines) == 1 and lines[0].startswith(f"resuming {run_dir}: skipping "), lines
        new_requests = len(server.requests) - requests_before
    assert new_requests <= (n - done_before) * CALLS_PER_KEPT
    with RunStore(run_dir) as store:
        docs = list(store.iter_documents())
        records = list(store.iter_records())
        assert store.integrity_check() == "ok"
    assert sorted(d["id"] for d in docs) == [f"doc-{i:04d}" for i in range(n)]
    assert {d["status"] for d in docs} == {"kept"}
    assert {d["runs"] for d in docs} == {1}
    assert sorted(r["source"]["doc_id"] for r in records) == [f"doc-{i:04d}" for i in range(n)]


def test_a_server_failing_every_call_is_one_line_a_non_zero_exit_and_no_orphans(tmp_path):
    pytest.importorskip("ray")
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(40)])

    def broken(_request: dict) -> Answer | Fault:
        return Fault("500")

    with LoopbackOpenAIServer(broken) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url, probe=False)
        (tmp_path / "s.toml").write_text(
            toml.read_text() + "\n[run]\nworkers = 2\nfailure_threshold = 2\n"
        )
        args = ("run", corpus, "-o", tmp_path / "run", "--settings", toml, "--concurrency", "2")
        run = subprocess.Popen(
            command(*args),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        workers: set[int] = set()
        while run.poll() is None:
            workers |= descendants(run.pid)
            time.sleep(0.05)
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1
    assert len(workers) >= 4
    agents = {pid for pid in workers if process_name(pid).endswith("Agent")}
    assert wait_until_gone(workers - agents, timeout=10.0) == set()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"gem-graph: error: cannot reach the model server at "
                               f"{server.base_url}: ")  # fmt: skip
    with RunStore(tmp_path / "run") as store:
        assert store.finished_ids() == set()
        assert store.summary()["documents"]["kept"] == 0


def test_an_endpoint_that_is_down_is_one_line_before_any_worker_starts(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(5)])
    done = gem("run", corpus, "-o", tmp_path / "run", "--base-url", f"http://127.0.0.1:{port}/v1",
               "--no-execute", "--workers", "2")  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]]
    assert lines[0].startswith(f"gem-graph: error: cannot reach the model server at "
                               f"http://127.0.0.1:{port}/v1: ")  # fmt: skip


def test_workers_without_ray_installed_is_one_line_with_the_install_hint(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    args = ["run", str(corpus), "-o", str(tmp_path / "run"), "--no-execute", "--workers", "2"]
    code = (
        "import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from gem_graph.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gem-graph: error: the Ray engine (--engine ray, --workers N) needs Ray, which is not "
        "installed: pip install 'gem-graph[ray]'"
    ]
    assert not (tmp_path / "run").exists()
