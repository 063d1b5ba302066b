"""Real servers' structured-output quirks, served on loopback: the probe picks the right
rung, a run on it keeps every document, and a server that cannot be used fails fast with
one line."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from test_runner_helpers import document, fast_settings, payload, stage_requests, write_jsonl

from gem_graph.llm import aclose_chat_model, make_chat_model
from gem_graph.probe import ProbeFailed, probe_model
from gem_graph.run.corpus import read_corpus
from gem_graph.run.endpoint import PROFILE_META
from gem_graph.run.runner import EndpointUnreachable, RunOptions, RunSummary, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.settings import ModelSettings, Settings
from gem_graph.testing.openai_server import Answer, Fault, LoopbackOpenAIServer
from gem_graph.testing.quirks import LLAMA_CPP_CAPS, Quirk, quirky_responder

QUIRKS: list[tuple[Quirk, str]] = [
    ("compliant", "json_schema"),
    ("llama_cpp", "json_object"),
    ("json_object_only", "json_object"),
    ("ignores_response_format", "function_calling"),
    ("no_tool_choice", "json_text"),
]


def _server(quirk: Quirk) -> LoopbackOpenAIServer:
    caps = LLAMA_CPP_CAPS if quirk == "llama_cpp" else ("max_completion_tokens", "max_tokens")
    return LoopbackOpenAIServer(quirky_responder(payload, quirk), honoured_caps=caps)


def _rung_of(request: dict) -> str:
    fmt = (request.get("response_format") or {}).get("type")
    if fmt:
        return str(fmt)
    return "function_calling" if request.get("tools") else "json_text"


async def _run(corpus: Path, run_dir: Path, base_url: str, **model: object) -> RunSummary:
    settings = fast_settings(base_url=base_url, **model)
    llm = make_chat_model(settings.model)
    try:
        return await run_corpus(
            read_corpus(corpus),
            llm=llm,
            settings=settings,
            options=RunOptions(run_dir=run_dir, progress=False),
        )
    finally:
        await aclose_chat_model(llm)


@pytest.mark.parametrize(("quirk", "rung"), QUIRKS)
async def test_a_run_probes_the_server_and_every_stage_starts_on_the_rung_that_works(
    tmp_path, quirk, rung
):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(2)])
    with _server(quirk) as server:
        result = await _run(corpus, tmp_path / "run", server.base_url)
        stages = stage_requests(server)
    assert (result.kept, result.failed, result.rejected) == (2, 0, 0)
    assert {_rung_of(r["json"]) for r in stages} == {rung}
    with RunStore(tmp_path / "run") as store:
        profile = store.get_meta(PROFILE_META)
        shown = store.summary()["server"]
    assert profile["server"]["method"] == rung
    assert shown.startswith(f"structured output {rung}, token cap via ")
    assert profile["model"] == "loopback-model"
    expected_cap = "max_tokens" if quirk == "llama_cpp" else "max_completion_tokens"
    assert profile["server"]["cap_parameter"] == expected_cap
    # Every stage request carries its cap in the form this server obeys.
    assert all(isinstance(r["json"].get(expected_cap), int) for r in stages)


async def test_a_resumed_run_reuses_the_stored_profile_instead_of_probing_again(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(2)])
    with _server("llama_cpp") as server:
        await _run(corpus, tmp_path / "run", server.base_url, probe=True)
        first = len(server.requests)
        more = write_jsonl(tmp_path / "c.jsonl", [document(i) for i in range(3)])
        result = await _run(more, tmp_path / "run", server.base_url)
        added = server.requests[first:]
    assert result.kept == 1 and result.skipped == 2
    assert len(added) == len(stage_requests_of(added)) == 3  # no probe calls, one document
    assert {_rung_of(r["json"]) for r in added} == {"json_object"}


def stage_requests_of(requests: list[dict]) -> list[dict]:
    from gem_graph.testing.quirks import is_probe_request

    return [r for r in requests if not is_probe_request(r["json"])]


async def test_a_probe_measures_speed_and_fits_the_timeout_to_each_stage_cap():
    with LoopbackOpenAIServer(quirky_responder(payload), latency_s=0.05) as server:
        llm = make_chat_model(ModelSettings(name="m", base_url=server.base_url))
        profile = await probe_model(llm, endpoint=server.base_url, model="m")
    server_profile = profile.server
    assert server_profile.latency_s is not None and server_profile.latency_s >= 0.05
    assert server_profile.tokens_per_s is not None and server_profile.tokens_per_s > 0
    settings = ModelSettings(server=server_profile)
    short, long = settings.request_timeout(1024), settings.request_timeout(16384)
    assert 60 <= short <= long <= 1800
    assert ModelSettings(server=server_profile, timeout_s=7).request_timeout(16384) == 7
    assert "structured output json_schema" in profile.summary


async def test_a_server_that_is_down_fails_the_probe_at_once_in_one_line():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    llm = make_chat_model(ModelSettings(name="m", base_url=url))
    started = time.monotonic()
    with pytest.raises(ProbeFailed) as caught:
        await probe_model(llm, endpoint=url, model="m")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"the model server at {url}: unreachable:")
    assert "\n" not in message


async def test_a_server_failing_every_call_fails_the_run_before_any_document(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])

    def broken(_request: dict) -> Answer | Fault:
        return Fault("500")

    with LoopbackOpenAIServer(broken) as server:
        with pytest.raises(EndpointUnreachable, match=r"keeps failing: Error code: 500"):
            await _run(corpus, tmp_path / "run", server.base_url)
        assert len(server.requests) == 3  # the first rung, tried three times; no documents
    with RunStore(tmp_path / "run") as store:
        assert store.finished_ids() == set()


async def test_a_key_the_server_refuses_is_named_without_retries(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def locked(_request: dict) -> Answer | Fault:
        return Fault("status", status=401, body={"error": {"message": "Incorrect API key"}})

    with LoopbackOpenAIServer(locked) as server:
        llm = make_chat_model(ModelSettings(name="m", base_url=server.base_url))
        with pytest.raises(
            ProbeFailed, match=r"refused the credentials: HTTP 401 \(OPENAI_API_KEY"
        ):
            await probe_model(llm, endpoint=server.base_url, model="m")
        assert len(server.requests) == 1


async def test_probe_off_sends_no_probe_and_an_explicit_method_is_used_as_given(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [document(0)])
    with _server("compliant") as server:
        result = await _run(
            corpus, tmp_path / "run", server.base_url, probe=False, structured_method="json_text"
        )
        assert result.kept == 1
        assert len(stage_requests(server)) == len(server.requests)
        assert {_rung_of(r["json"]) for r in server.requests} == {"json_text"}


def test_settings_without_a_probe_keep_the_old_timeout():
    assert Settings().model.request_timeout(16384) == 120.0


async def test_a_timeout_that_keeps_firing_is_said_once_with_the_flag_to_change(caplog):
    from gem_graph.llm import ModelTimeout, StructuredLLM
    from gem_graph.schemas import FilterOutput

    messages = [{"role": "user", "content": "Is this a procedure?"}]
    with LoopbackOpenAIServer(quirky_responder(payload), latency_s=0.4) as server:
        llm = make_chat_model(ModelSettings(name="m", base_url=server.base_url))
        structured = StructuredLLM(llm, timeout=lambda _cap: 0.05)
        for _ in range(5):
            with pytest.raises(ModelTimeout, match=r"did not answer within 0.05 s"):
                await structured.call(FilterOutput, messages, stage="filter", max_tokens=64)
    notices = [r.getMessage() for r in caplog.records if "keep timing out" in r.getMessage()]
    assert len(notices) == 1
    assert "--timeout SECONDS" in notices[0] and "after 0.05 s" in notices[0]


async def test_the_library_probes_once_per_endpoint_and_model():
    from gem_graph.graph import asynthesize
    from gem_graph.testing.quirks import is_probe_request

    with _server("llama_cpp") as server:
        settings = fast_settings(base_url=server.base_url, name="library-model")
        llm = make_chat_model(settings.model)
        try:
            texts = [{"id": d["id"], "text": d["text"]} for d in (document(0), document(1))]
            first = await asynthesize(texts[:1], llm=llm, settings=settings)
            probes = sum(is_probe_request(r["json"]) for r in server.requests)
            second = await asynthesize(texts[1:], llm=llm, settings=settings)
        finally:
            await aclose_chat_model(llm)
        assert sum(is_probe_request(r["json"]) for r in server.requests) == probes > 0
        stages = stage_requests(server)
    assert len(first["records"]) == len(second["records"]) == 1
    assert {_rung_of(r["json"]) for r in stages} == {"json_object"}
