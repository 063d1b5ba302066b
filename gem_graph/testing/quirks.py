"""Model servers as they really behave, for the loopback test server.

Each quirk is one real server's way of handling structured-output requests (see the
README's compatibility table): llama-cpp-python answers `response_format: json_schema`
with a 500 validation error and ignores `max_completion_tokens`; some servers ignore
`response_format` silently, offer only `json_object`, or refuse a forced `tool_choice`.
`quirky_responder` puts one in front of a payload function, so a run or a probe can be
checked to end on the right rung. The probe's own requests get the answers a capable
model would give (`probe_answer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from gem_graph.probe import PROBE_MARKER
from gem_graph.testing.openai_server import Answer, Fault, ServerResponder, structured_answer

Quirk = Literal[
    "compliant", "llama_cpp", "ignores_response_format", "json_object_only", "no_tool_choice"
]
Payload = Callable[[dict[str, Any]], dict[str, Any]]

LLAMA_CPP_CAPS = ("max_tokens",)
"""The cap field llama-cpp-python obeys (pass as `LoopbackOpenAIServer(honoured_caps=…)`)."""
LLAMA_CPP_500 = {
    "detail": [
        {
            "type": "literal_error",
            "loc": ["body", "response_format", "type"],
            "msg": "Input should be 'text' or 'json_object'",
            "input": "json_schema",
        }
    ]
}


def is_probe_request(request: dict[str, Any]) -> bool:
    """True for the capability probe's requests (their system message carries the marker)."""
    return any(PROBE_MARKER in str(m.get("content") or "") for m in request.get("messages", []))


def probe_answer(request: dict[str, Any]) -> Answer | None:
    """What a capable model answers to a probe request (None: not a probe request)."""
    if not is_probe_request(request):
        return None
    if "Count from 1 to 60" in json.dumps(request["messages"]):
        return Answer(content=" ".join(str(n) for n in range(1, 61)))
    return structured_answer(request, {"word": "ready", "number": 7})


def _refusal(status: int, message: str) -> Fault:
    return Fault("status", status=status, body={"error": {"message": message}})


def quirky_responder(payload: Payload, quirk: Quirk = "compliant") -> ServerResponder:
    """A responder answering probe and stage requests as a server with `quirk` would;
    `payload(request)` is the JSON object the model means to answer with."""

    def respond(request: dict[str, Any]) -> Answer | Fault:
        fmt = (request.get("response_format") or {}).get("type")
        tools = request.get("tools")
        if quirk == "llama_cpp" and fmt == "json_schema":
            return Fault("status", status=500, body=LLAMA_CPP_500)
        if quirk == "json_object_only" and (fmt == "json_schema" or tools):
            what = "tools are" if tools else "response_format 'json_schema' is"
            return _refusal(400, f"{what} not supported; use response_format 'json_object'")
        if quirk == "no_tool_choice":
            if fmt is not None:
                return _refusal(400, f"response_format {fmt!r} is not supported")
            if request.get("tool_choice") not in (None, "auto", "none"):
                return _refusal(400, "tool_choice: only 'auto' and 'none' are supported")
        if quirk == "ignores_response_format" and fmt is not None:
            return Answer(content="Sure, I can help with that. What would you like to know?")
        probe = probe_answer(request)
        return probe if probe is not None else structured_answer(request, payload(request))

    return respond
