"""A real ChatOpenAI against an OpenAI-compatible server on 127.0.0.1 (replies scripted)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from library_script import EXTRACT_OK, FILTER_OK, GROUND_OK, JUDGE_OK, LIBRARY_TEXT, settings

from gem_graph import build_gem_graph
from gem_graph.llm import make_chat_model
from gem_graph.settings import ModelSettings
from gem_graph.testing.openai_server import (
    Answer,
    Fault,
    LoopbackOpenAIServer,
    requested_schema_name,
    structured_answer,
)

PAYLOADS = {
    "FilterOutput": FILTER_OK,
    "ExtractOutput": EXTRACT_OK,
    "TrajectoryOutput": GROUND_OK,
    "JudgeOutput": JUDGE_OK,
}


def respond(request: dict[str, Any]) -> Answer | Fault:
    name = requested_schema_name(request)
    if name is None:  # JSON in text: find the schema title in the prompt
        prompt = json.dumps(request["messages"])
        name = next(n for n in PAYLOADS if f'\\"title\\": \\"{n}\\"' in prompt)
    answer = structured_answer(request, PAYLOADS[name])
    return Answer(
        content=answer.content, tool_call=answer.tool_call, prompt_tokens=100, completion_tokens=10
    )


def chat_model(base_url: str):
    return make_chat_model(ModelSettings(name="loopback-model", base_url=base_url, timeout_s=5))


def settings_with(method: str):
    base = settings()
    return base.model_copy(
        update={"model": base.model.model_copy(update={"structured_method": method})}
    )


async def test_chat_openai_sends_the_schema_and_usage_is_counted(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-secret")
    with LoopbackOpenAIServer(respond) as server:
        graph = build_gem_graph(llm=chat_model(server.base_url), settings=settings())
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    assert out["rejects"] == []
    [record] = out["records"]
    first = server.requests[0]["json"]
    assert first["model"] == "loopback-model"
    fmt = first["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "FilterOutput"
    assert set(fmt["json_schema"]["schema"]["required"]) >= {"relevant", "platform", "domain"}
    assert LIBRARY_TEXT.strip().splitlines()[0] in json.dumps(first["messages"])
    assert "authorization" not in server.requests[0]["headers"]
    assert record["usage"]["filter"] == {
        "calls": 1,
        "input_tokens": 100,
        "output_tokens": 10,
        "seconds": record["usage"]["filter"]["seconds"],
    }
    assert record["usage"]["total"]["calls"] == 5
    assert record["usage"]["total"]["input_tokens"] == 500
    assert record["provenance"]["models"]["default"] == "loopback-model"


@pytest.mark.parametrize("method", ["function_calling", "json_text"])
async def test_other_structured_output_methods_work_end_to_end(method):
    with LoopbackOpenAIServer(respond) as server:
        graph = build_gem_graph(llm=chat_model(server.base_url), settings=settings_with(method))
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    assert len(out["records"]) == 1, out["rejects"]
    first = server.requests[0]["json"]
    assert "response_format" not in first
    assert bool(first.get("tools")) is (method == "function_calling")


async def test_a_server_without_json_schema_support_falls_back_down_the_ladder():
    def no_json_schema(request: dict[str, Any]) -> Answer | Fault:
        if request.get("response_format", {}).get("type") == "json_schema":
            return Fault("400")
        return respond(request)

    with LoopbackOpenAIServer(no_json_schema) as server:
        graph = build_gem_graph(llm=chat_model(server.base_url), settings=settings())
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    assert len(out["records"]) == 1, out["rejects"]
    kinds = [
        (
            r["json"]["response_format"]["type"]
            if r["json"].get("response_format")
            else "tools"
            if r["json"].get("tools")
            else "text"
        )
        for r in server.requests
    ]
    assert kinds[0] == "json_schema" and set(kinds[1:]) == {"json_object"}


@pytest.mark.parametrize(
    "fault",
    [
        Fault("429", retry_after=0.01),
        Fault("500"),
        Fault("reset"),
        Fault("truncated"),
        Fault("not_json"),
        Fault("slow", delay_s=1.5),
    ],
    ids=lambda f: f.kind,
)
async def test_transient_server_faults_are_retried_and_the_document_still_succeeds(fault):
    with LoopbackOpenAIServer(respond) as server:
        server.inject(fault)
        model = make_chat_model(ModelSettings(name="m", base_url=server.base_url, timeout_s=1))
        graph = build_gem_graph(llm=model, settings=settings())
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    assert len(out["records"]) == 1, out["rejects"]
    assert out["records"][0]["usage"]["filter"]["calls"] == 1
    assert len(server.requests) == 6


async def test_an_endpoint_that_keeps_failing_gives_a_transport_reject():
    with LoopbackOpenAIServer(respond) as server:
        server.inject(*[Fault("500")] * 10)
        graph = build_gem_graph(llm=chat_model(server.base_url), settings=settings())
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    [reject] = out["rejects"]
    assert reject["stage"] == "filter" and reject["code"] == "transport"
    assert "InternalServerError" in reject["reason"] or "500" in reject["reason"]
    assert "sk-" not in json.dumps(reject)


async def test_server_specific_extra_body_survives_alongside_the_response_format():
    """json_schema travels in the raw body; a model's own extra_body must not be lost."""
    with LoopbackOpenAIServer(respond) as server:
        model = chat_model(server.base_url).model_copy(update={"extra_body": {"top_k": 20}})
        graph = build_gem_graph(llm=model, settings=settings())
        out = await graph.ainvoke({"document": {"id": "lib", "text": LIBRARY_TEXT}})
    assert len(out["records"]) == 1, out["rejects"]
    first = server.requests[0]["json"]
    assert first["top_k"] == 20
    assert first["response_format"]["json_schema"]["strict"] is True


def test_the_aiohttp_client_without_aiohttp_installed_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'gem-graph\[aiohttp\]'"):
        make_chat_model(
            ModelSettings(name="m", base_url="http://127.0.0.1:9", http_client="aiohttp")
        )
