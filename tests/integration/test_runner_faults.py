"""Server faults during a corpus run: retried, or recorded with a reason; never a crash."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from test_runner_helpers import (
    CALLS_PER_KEPT,
    document,
    fast_settings,
    respond,
    stage_requests,
    write_jsonl,
)

from gem_graph.llm import aclose_chat_model, make_chat_model
from gem_graph.run.corpus import read_corpus
from gem_graph.run.runner import EndpointUnreachable, RunOptions, RunSummary, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.settings import RunSettings
from gem_graph.testing.openai_server import Answer, Fault, LoopbackOpenAIServer


async def run(path: Path, run_dir: Path, base_url: str, **options) -> RunSummary:
    settings = fast_settings(
        base_url=base_url,
        timeout_s=options.pop("timeout_s", 5.0),
        http_client=options.pop("http_client", "httpx"),
        # The faults are injected into stage calls; the probe has tests of its own.
        probe=options.pop("probe", False),
    )
    run_values = {k: options.pop(k) for k in list(options) if k in RunSettings.model_fields}
    settings = settings.updated(run=run_values)
    opts = RunOptions(run_dir=run_dir, progress=False, **options)
    llm = make_chat_model(settings.model)
    try:
        return await run_corpus(read_corpus(path), llm=llm, settings=settings, options=opts)
    finally:
        await aclose_chat_model(llm)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("429", retry_after=0.05),
        Fault("500"),
        Fault("reset"),
        Fault("truncated"),
        Fault("not_json"),
        Fault("slow", delay_s=1.2),
    ],
    ids=lambda f: f.kind,
)
@pytest.mark.parametrize("http_client", ["httpx", "aiohttp"])
async def test_a_transient_fault_is_retried_and_the_document_is_kept(tmp_path, fault, http_client):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    with LoopbackOpenAIServer(respond) as server:
        server.inject(fault)
        result = await run(
            corpus, tmp_path / "run", server.base_url, timeout_s=0.8, http_client=http_client
        )
        requests = len(stage_requests(server))
    assert (result.kept, result.failed, result.stopped_reason) == (1, 0, None)
    assert requests == CALLS_PER_KEPT + 1
    with RunStore(tmp_path / "run") as store:
        [record] = store.iter_records()
    assert record["usage"]["filter"]["calls"] == 1  # the retry is not an attempt


async def test_a_fault_that_outlasts_the_retries_marks_the_document_failed_until_a_rerun(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0), document(1)])
    with LoopbackOpenAIServer(respond) as server:
        server.inject(*[Fault("500")] * 3)  # 1 try + 2 retries of doc-0000's filter call
        first = await run(corpus, tmp_path / "run", server.base_url, concurrency=1)
        assert (first.kept, first.failed, first.complete) == (1, 1, False)
        with RunStore(tmp_path / "run") as store:
            failed = store.document("doc-0000")
            [reject] = store.iter_rejects(include_failed=True)
        assert failed["status"] == "failed"
        assert reject["code"] == "transport" and "Error code: 500" in reject["reason"]
        second = await run(corpus, tmp_path / "run", server.base_url)
    assert (second.processed, second.skipped, second.kept) == (1, 1, 1)
    with RunStore(tmp_path / "run") as store:
        assert sorted(r["source"]["doc_id"] for r in store.iter_records()) == [
            "doc-0000",
            "doc-0001",
        ]
        assert list(store.iter_rejects(include_failed=True)) == []
        assert store.document("doc-0000")["runs"] == 2


async def test_a_server_failing_every_call_stops_the_run_with_one_clear_reason(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(40)])

    def broken(_request: dict) -> Answer | Fault:
        return Fault("500")

    with LoopbackOpenAIServer(broken) as server:
        result = await run(
            corpus, tmp_path / "run", server.base_url, concurrency=2, failure_threshold=3
        )
    assert result.stopped_reason is not None
    assert result.stopped_reason.startswith(f"cannot reach the model server at {server.base_url}:")
    assert result.stopped_reason.endswith("Error code: 500 - internal error")
    assert 3 <= result.failed <= 5
    assert result.processed == result.failed
    with RunStore(tmp_path / "run") as store:
        assert store.summary()["stopped_reason"] == result.stopped_reason
        assert store.finished_ids() == set()


async def test_an_endpoint_that_is_down_fails_at_once_before_any_document(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    started = time.monotonic()
    with pytest.raises(EndpointUnreachable, match=rf"cannot reach .*127\.0\.0\.1:{port}/v1: "):
        await run(corpus, tmp_path / "run", f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - started < 2
    assert not (tmp_path / "run" / "run.sqlite").exists()
