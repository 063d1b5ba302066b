"""The viewer's items: one kept record drawn as a chat, one reject as its problems.

Everything here is data for the page's script, which draws it with DOM text nodes; the
strings are the record's own, unescaped (escaping is the page's job). Tool calls are
paired with their real outputs from `verification.calls`, and each write call carries
the rows it changed (`statediff.attribute`). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from gem_graph.checks.stats import is_tool_error
from gem_graph.report.draft import annotate, location_label
from gem_graph.report.statediff import attribute, flatten


def pretty(value: Any) -> str:
    """A JSON value indented for reading."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def pretty_text(text: Any) -> str:
    """A string holding JSON, indented; any other string as it is."""
    if not isinstance(text, str):
        return "" if text is None else pretty(text)
    try:
        return pretty(json.loads(text))
    except ValueError:
        return text


def first_line(text: Any, limit: int = 90) -> str:
    line = next((p.strip() for p in str(text or "").splitlines() if p.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _usage(usage: Any) -> list[dict[str, Any]]:
    rows = []
    for stage, row in (usage or {}).items():
        if isinstance(row, Mapping):
            rows.append({"stage": str(stage), **{k: row.get(k) for k in ("calls", "seconds")}})
            rows[-1]["tokens"] = int(row.get("input_tokens") or 0) + int(
                row.get("output_tokens") or 0
            )
    return rows


def _calls(
    message: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
    answers: Mapping[str, Mapping[str, Any]],
    read_only: Collection[str] | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for call in message.get("tool_calls") or []:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or {}
        call_id = str(call.get("id", ""))
        name = str(function.get("name", ""))
        result = results.get(call_id)
        answer = answers.get(call_id)
        if result is not None:
            error = result.get("status") == "tool_error"
            output = str(result.get("output")) if error else pretty(result.get("output"))
        else:
            content = answer.get("content") if answer else None
            error = is_tool_error(content)
            output = pretty_text(content) if answer else ""
        out.append(
            {
                "id": call_id,
                "name": name,
                "arguments": pretty_text(function.get("arguments")),
                "output": output,
                "error": error,
                "executed": result is not None,
                "answered": answer is not None or result is not None,
                "write": None if read_only is None else name not in read_only,
                "diff": [],
            }
        )
    return out


def record_item(
    index: int, record: Mapping[str, Any], read_only: Collection[str] | None
) -> dict[str, Any]:
    """A kept record as chat turns, its calls with outputs and row changes, and its judge.

    `read_only` names the environment's read-only tools (None when unknown: then every
    successful call may own diff rows).
    """
    verification = record.get("verification") or {}
    results = {str(c.get("call_id")): c for c in verification.get("calls") or []}
    messages = [m for m in record.get("messages") or [] if isinstance(m, Mapping)]
    answers = {str(m.get("tool_call_id")): m for m in messages if m.get("role") == "tool"}
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            system.append(str(message.get("content") or ""))
        elif role in ("user", "assistant"):
            turn = {"role": role, "text": str(message.get("content") or "")}
            if role == "assistant":
                turn["calls"] = _calls(message, results, answers, read_only)
                calls.extend(turn["calls"])
            turns.append(turn)
    rows = flatten(verification.get("state_diff"))
    writers = [
        {
            "call_id": call["id"],
            "arguments": _json_or_none(call["arguments"]),
            "output": (results.get(call["id"]) or {}).get("output"),
        }
        for call in calls
        if not call["error"] and call["write"] is not False and call["answered"]
    ]
    owned, loose = attribute(rows, writers)
    for call in calls:
        call["diff"] = owned.get(call["id"], [])
    judge = record.get("judge") or {}
    source = record.get("source") or {}
    environment = record.get("environment") or {}
    scenario = record.get("scenario") or {}
    first_user = next((t["text"] for t in turns if t["role"] == "user"), "")
    return {
        "index": index,
        "kind": "kept",
        "id": str(record.get("id", "")),
        "doc_id": str(source.get("doc_id", "")),
        "env": environment.get("name"),
        "env_key": environment.get("sha256"),
        "code": None,
        "title": first_line(first_user),
        "system": "\n\n".join(system),
        "turns": turns,
        "diff_rows": len(rows),
        "unattributed": loose,
        "verification": {
            "final_state_sha256": verification.get("final_state_sha256"),
            "deterministic": verification.get("deterministic"),
            "tier": (verification.get("isolation") or {}).get("tier"),
        }
        if verification
        else None,
        "judge": {
            "passed": judge.get("passed"),
            "rubrics": [
                {
                    "label": str(k),
                    "passed": bool(v.get("passed")),
                    "reason": str(v.get("reason", "")),
                }
                for k, v in (judge.get("rubrics") or {}).items()
                if isinstance(v, Mapping)
            ],
        }
        if judge
        else None,
        "stats": dict(record.get("stats") or {}),
        "usage": _usage(record.get("usage")),
        "scenario": {"now": scenario.get("now"), "rows": pretty(scenario.get("rows") or {})},
        "user_goal": _goal(record.get("user_goal")),
    }


def _goal(goal: Any) -> list[dict[str, Any]] | None:
    """The record's optional `user_goal` (0.2) as labelled parts: text or a list of texts."""
    if not isinstance(goal, Mapping):
        return None
    parts = []
    for key in ("persona", "wants", "known_facts", "accepts", "refuses"):
        value = goal.get(key)
        if isinstance(value, list):
            parts.append({"label": key.replace("_", " "), "items": [str(v) for v in value]})
        elif value not in (None, ""):
            parts.append({"label": key.replace("_", " "), "text": str(value)})
    return parts or None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def reject_item(index: int, reject: Mapping[str, Any], status: str) -> dict[str, Any]:
    """A reject: stage, attempts, reason, and its problems grouped by location.

    A reject that carries its last draft (`draft`) also gets the draft as lines with each
    problem pinned where its path points (`draft.annotate`).
    """
    problems = [
        {
            "code": str(p.get("code", "")),
            "message": str(p.get("message", "")),
            "where": str(p.get("where", "")),
            "location": location_label(str(p.get("where", ""))),
        }
        for p in reject.get("problems") or []
        if isinstance(p, Mapping)
    ]
    locations: dict[str, list[int]] = {}
    for i, problem in enumerate(problems):
        locations.setdefault(problem["where"], []).append(i)
    draft = reject.get("draft")
    return {
        "index": index,
        "kind": status,
        "id": str(reject.get("doc_id", "")),
        "doc_id": str(reject.get("doc_id", "")),
        "env": None,
        "env_key": None,
        "code": str(reject.get("code", "")),
        "stage": str(reject.get("stage", "")),
        "attempts": reject.get("attempts"),
        "title": first_line(reject.get("reason")),
        "reason": str(reject.get("reason", "")),
        "problems": problems,
        "locations": [
            {"where": where, "label": location_label(where), "problems": indexes}
            for where, indexes in locations.items()
        ],
        "draft": annotate(draft, problems) if draft is not None else None,
        "usage": _usage(reject.get("usage")),
    }
