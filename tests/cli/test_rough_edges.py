"""What a newcomer hit on a fresh clone: each rough edge, as the command line now behaves."""

from __future__ import annotations

import importlib
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_run_cli import cli_env, command, finished_count, gem
from test_runner_helpers import document, payload, respond, settings_toml, write_jsonl

from gem_graph.run.store import RunStore
from gem_graph.testing.openai_server import LoopbackOpenAIServer
from gem_graph.testing.quirks import LLAMA_CPP_CAPS, quirky_responder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("kind", ["empty file", "folder without texts"])
def test_empty_input_says_so_and_exits_non_zero(tmp_path, kind):
    if kind == "empty file":
        source = tmp_path / "empty.jsonl"
        source.write_text("\n\n")
    else:
        source = tmp_path / "corpus"
        source.mkdir()
        (source / "notes.pdf").write_bytes(b"%PDF")
    done = gem("run", source, "-o", tmp_path / "run", "--base-url", "http://127.0.0.1:9/v1")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"gem-graph: error: {source} holds no documents (an empty file, or a folder without "
        ".txt/.md files); nothing to run"
    )
    assert not (tmp_path / "run").exists()


def test_no_key_for_openais_own_api_is_said_at_once(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    env = {k: v for k, v in cli_env().items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    started = time.monotonic()
    done = subprocess.run(
        command("run", corpus, "-o", tmp_path / "run"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < 20  # no retries against the network
    assert done.returncode == 2
    assert "OPENAI_API_KEY is not set" in done.stderr and "--base-url" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_sigterm_ends_a_run_like_ctrl_c_with_its_session_closed(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(30)])
    run_dir = tmp_path / "run"
    with LoopbackOpenAIServer(respond, latency_s=0.1) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        args = ("run", corpus, "-o", run_dir, "--settings", toml, "--concurrency", "2")
        victim = subprocess.Popen(
            command(*args, "--quiet", "--no-cache"),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while finished_count(run_dir) < 2 and time.monotonic() < deadline:
            assert victim.poll() is None, victim.communicate()
            time.sleep(0.02)
        victim.send_signal(signal.SIGTERM)
        _, stderr = victim.communicate(timeout=30)
        assert victim.returncode == 143, stderr
        assert "terminated; finished work is kept" in stderr
        assert "Traceback" not in stderr
        with RunStore(run_dir) as store:
            sessions = list(store.db.table("sessions").rows)
            kept = len(store.finished_ids())
        assert sessions[-1]["finished_at"] is not None
        assert sessions[-1]["stopped_reason"] == "interrupted"
        resumed = gem(*args, "--quiet", "--no-cache", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir}: skipping {kept} finished document(s)" in resumed.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    corpus = write_jsonl(root / "c.jsonl", [document(i) for i in range(40)])
    with LoopbackOpenAIServer(respond) as server:
        toml = settings_toml(root / "s.toml", server.base_url)
        done = gem("run", corpus, "-o", root / "run", "--settings", toml, "--quiet")
    assert done.returncode == 0, done.stderr
    return root / "run"


@pytest.mark.parametrize(
    "args", [("export", "{run}", "--format", "openai"), ("stats", "{run}", "--json")]
)
def test_a_reader_that_stops_early_gets_no_traceback(small_run, args):
    argv = [a.format(run=small_run) for a in args]
    reader = subprocess.Popen(
        command(*argv), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.read(10)  # like `| head -c 10`
    reader.stdout.close()
    stderr = reader.stderr.read().decode()
    reader.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_distill_on_a_run_that_kept_nothing_says_why(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i, news=True) for i in range(3)])
    with LoopbackOpenAIServer(respond) as server:
        toml = settings_toml(tmp_path / "s.toml", server.base_url)
        assert gem("run", corpus, "-o", tmp_path / "run", "--settings", toml).returncode == 0
    done = gem("distill", tmp_path / "run", "-o", tmp_path / "data")
    assert done.returncode == 1
    assert "the run kept no trajectories (3 document(s): 3 rejected, 0 failed)" in done.stderr
    assert f"gem-graph stats {tmp_path / 'run'}" in done.stderr


def test_doctor_on_a_llama_cpp_like_server_names_the_method_and_cap_it_would_use():
    server = LoopbackOpenAIServer(
        quirky_responder(payload, "llama_cpp"), honoured_caps=LLAMA_CPP_CAPS
    )
    with server:
        done = gem("doctor", "--base-url", server.base_url, "--model", "m")
    assert done.returncode in (0, 1), done.stderr  # 1 only when the sandbox tier is missing
    out = done.stdout
    assert "json_schema" in out and "rejected the request: Error code: 500" in out
    assert "a run would use: structured output auto, starting at json_object" in out
    assert "token cap sent as: max_tokens" in out
    assert "sandbox tier standard" in out


def test_doctor_on_a_server_that_is_down_is_one_line_and_exit_one():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = gem("doctor", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m")
    assert done.returncode == 1
    failures = [line for line in done.stdout.splitlines() if line.startswith("✗ the model")]
    assert len(failures) == 1 and "unreachable" in failures[0]


def test_strict_without_bubblewrap_says_how_to_install_it(monkeypatch):
    sandbox_probe = importlib.import_module("gem_graph.sandbox.probe")
    monkeypatch.setattr(sandbox_probe.shutil, "which", lambda _name: None)
    _, reason = sandbox_probe._bwrap_status()
    assert "apt-get install bubblewrap" in reason and "dnf install bubblewrap" in reason


def test_the_example_settings_file_loads_with_its_values_attributed_to_it():
    done = gem("config", "show", "--settings", EXAMPLES / "settings.toml", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["model.name"]["value"] == "Qwen/Qwen3-32B"
    assert shown["model.name"]["source"].startswith("file ")
    assert shown["sandbox.tier"]["value"] == "standard"
