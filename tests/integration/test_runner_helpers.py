"""Shared pieces of the runner tests: a scripted loopback model and corpus writers.

The loopback server answers each stage by the structured-output schema the request asks
for, so any number of documents can run against it concurrently. A text containing
"NEWS" is judged irrelevant by the filter. With refine and judge off, a kept document
costs three calls (filter, extract, ground).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gem_graph.settings import ModelSettings, PipelineSettings, RunSettings, Settings
from gem_graph.testing.openai_server import (
    Answer,
    Fault,
    LoopbackOpenAIServer,
    requested_schema_name,
    structured_answer,
)
from gem_graph.testing.quirks import is_probe_request, probe_answer

CALLS_PER_KEPT = 3

PROCEDURE = """How to renew a borrowed book online
1. Sign in to the library portal with your library card number.
2. Open "My loans" to see what you have borrowed and when each item is due.
3. Pick the loan and press "Renew". A loan can be renewed at most twice, and not when
   another member has reserved the book.
4. The new due date is shown on screen. Fines for late items must be paid first.
"""


def _tool(
    name: str, description: str, props: dict[str, Any], read_only: bool, quote: str
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
        "required": list(props),
        "additionalProperties": False,
    }
    return {
        "name": name,
        "description": description,
        "parameters_json": json.dumps(schema),
        "read_only": read_only,
        "confirm_before": False,
        "quote": quote,
    }


SIGN_IN = "Sign in to the library portal with your library card number."
MY_LOANS = 'Open "My loans" to see what you have borrowed'
RENEW = 'Pick the loan and press "Renew".'


def _call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def _msg(role: str, content: str | None, calls: Any = None, call_id: str | None = None) -> dict:
    return {"role": role, "content": content, "tool_calls": calls, "tool_call_id": call_id}


FILTER_OK = {
    "relevant": True,
    "reason": "Multi-step procedure in a library web portal.",
    "summary": "Renew a borrowed library book online.",
    "platform": "computer",
    "domain": "education",
    "category": "account_management",
}
FILTER_NO = {**FILTER_OK, "relevant": False, "reason": "A news report, not a procedure."}
EXTRACT_OK = {
    "workflows": [
        {
            "name": "renew_loan",
            "description": "Sign in, list loans, renew one.",
            "steps": [
                {"step": "find the member by card number", "quote": SIGN_IN},
                {"step": "list the loans", "quote": MY_LOANS},
                {"step": "renew the loan", "quote": RENEW},
            ],
            "graph": "(find_member)->(list_loans)->(renew_loan)",
            "constraints": ["find_member before list_loans", "at most two renewals per loan"],
            "example_calls": [
                {"tool": "find_member", "arguments_json": json.dumps({"card_number": "4821-7730"})},
                {"tool": "list_loans", "arguments_json": json.dumps({"member_id": "M-1001"})},
                {
                    "tool": "renew_loan",
                    "arguments_json": json.dumps({"member_id": "M-1001", "loan_id": "L-77"}),
                },
            ],
        }
    ],
    "tools": [
        _tool(
            "find_member",
            "Look up a member by card number.",
            {"card_number": "Card."},
            True,
            SIGN_IN,
        ),
        _tool("list_loans", "List a member's loans.", {"member_id": "Member id."}, True, MY_LOANS),
        _tool(
            "renew_loan",
            "Renew one loan; refused after two renewals or when reserved.",
            {"member_id": "Member id.", "loan_id": "Loan id."},
            False,
            RENEW,
        ),
    ],
    "rules": [
        {"rule": "A loan can be renewed at most twice.", "quote": "renewed at most twice"},
        {
            "rule": "A reserved book cannot be renewed.",
            "quote": "not when another member has reserved the book",
        },
    ],
}
GROUND_OK = {
    "messages": [
        _msg("system", "You are the Riverside Library assistant. A loan renews at most twice."),
        _msg("user", "Hi, I'd like to renew The Hobbit. My card is 4821-7730."),
        _msg("assistant", None, [_call("call_1", "find_member", {"card_number": "4821-7730"})]),
        _msg("tool", json.dumps({"member_id": "M-1001", "name": "Ana Ruiz"}), call_id="call_1"),
        _msg("assistant", None, [_call("call_2", "list_loans", {"member_id": "M-1001"})]),
        _msg(
            "tool",
            json.dumps({"loans": [{"loan_id": "L-77", "title": "The Hobbit", "renewals": 1}]}),
            call_id="call_2",
        ),
        _msg("assistant", "I found The Hobbit (loan L-77), renewed once. Renew it now?"),
        _msg("user", "Yes please."),
        _msg(
            "assistant",
            None,
            [_call("call_3", "renew_loan", {"member_id": "M-1001", "loan_id": "L-77"})],
        ),
        _msg("tool", json.dumps({"loan_id": "L-77", "due": "2025-01-24"}), call_id="call_3"),
        _msg("assistant", "Done: The Hobbit is now due on 2025-01-24."),
    ],
    "scenario": {"now": "2025-01-08T10:00:00+00:00", "rows_json": "{}"},
    "patterns": ["clarification", "multi_hop", "rule_awareness"],
    "new_tools": [],
}
PAYLOADS = {"ExtractOutput": EXTRACT_OK, "TrajectoryOutput": GROUND_OK}


def respond(request: dict[str, Any]) -> Answer | Fault:
    """Answer any stage of the library procedure (and the capability probe, as a capable
    model would); texts with NEWS are irrelevant."""
    probe = probe_answer(request)
    if probe is not None:
        return probe
    answer = structured_answer(request, payload(request))
    return Answer(
        content=answer.content, tool_call=answer.tool_call, prompt_tokens=100, completion_tokens=10
    )


def payload(request: dict[str, Any]) -> dict[str, Any]:
    """The JSON object the scripted model answers a stage request with."""
    name = requested_schema_name(request)
    prompt = json.dumps(request["messages"])
    if name is None:
        name = next(n for n in ("FilterOutput", *PAYLOADS) if f'\\"title\\": \\"{n}\\"' in prompt)
    if name == "FilterOutput":
        return FILTER_NO if "NEWS" in prompt else FILTER_OK
    return PAYLOADS[name]


def stage_requests(server: LoopbackOpenAIServer) -> list[dict[str, Any]]:
    """The server's requests from pipeline stages (the capability probe's left out)."""
    return [r for r in server.requests if not is_probe_request(r["json"])]


def fast_settings(**model: Any) -> Settings:
    """Execution, refine and judge off; quick transport retries; the loopback model."""
    model_settings: dict[str, Any] = {
        "name": "loopback-model",
        "timeout_s": 5.0,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "max_transport_retries": 2,
        **model,
    }
    return Settings(
        model=ModelSettings(**model_settings),
        pipeline=PipelineSettings(execute=False, refine=False, judge=False),
        run=RunSettings(cache=False),
    )


def settings_toml(path: Path, base_url: str, **model: Any) -> Path:
    """The TOML equivalent of `fast_settings` for the CLI."""
    values = {
        "name": "loopback-model",
        "base_url": base_url,
        "timeout_s": 5.0,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "max_transport_retries": 2,
        **model,
    }
    lines = ["[model]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    lines += ["", "[pipeline]", "execute = false", "refine = false", "judge = false"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def document(index: int, *, news: bool = False) -> dict[str, Any]:
    text = ("NEWS: the council approved the parks budget." if news else PROCEDURE) + (
        f"\n\nEntry {index}."
    )
    return {"id": f"doc-{index:04d}", "text": text, "lang": "en"}


def write_jsonl(path: Path, rows: list[dict[str, Any]] | list[str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
