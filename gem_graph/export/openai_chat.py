"""The `openai` export format: `{"id", "messages", "tools", "scenario"}` in OpenAI chat
format; `gem-graph verify` reads these rows back.

Messages keep only `role`, `content`, `tool_calls` (assistant, when it calls) and
`tool_call_id` (tool). `content` is always a string (`""` for an assistant turn that only
calls tools) and `arguments` always a JSON string, so every row has the same Arrow types
and a JSONL of many records loads with `datasets.load_dataset("json", ...)`. `tools` is a
JSON *string* by default: JSON Schemas differ from tool to tool, and Arrow would merge
them into one struct, filling every tool with the other tools' properties as nulls. TRL
decodes a string `tools` column; pass `tools_as_json=False` for a plain list (e.g.
OpenAI's fine-tuning API). `scenario` (the rows and clock the dialogue starts from, `null`
when none) follows the same choice, so a row can be replayed.
"""

from __future__ import annotations

import json
from typing import Any

from gem_graph.export.dialogue import (
    ExportError,
    as_text,
    call_arguments,
    call_name,
    calls_of,
    messages_of,
)


def _openai_call(call: dict[str, Any]) -> dict[str, Any]:
    """One tool call with exactly `id`, `type` and `function` (`arguments` a JSON string)."""
    name = call_name(call)
    arguments = call["function"].get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(call_arguments(call), ensure_ascii=False)
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def to_openai(record: dict[str, Any], *, tools_as_json: bool = True) -> dict[str, Any]:
    """`{"id", "messages", "tools", "scenario"}` in OpenAI chat format, normalised for HF
    datasets and TRL."""
    out: list[dict[str, Any]] = []
    for message in messages_of(record):
        role = message["role"]
        row: dict[str, Any] = {"role": role, "content": as_text(message.get("content"))}
        if role == "assistant" and calls_of(message):
            row["tool_calls"] = [_openai_call(c) for c in calls_of(message)]
        if role == "tool":
            if not message.get("tool_call_id"):
                raise ExportError("a tool message has no tool_call_id")
            row["tool_call_id"] = str(message["tool_call_id"])
        out.append(row)
    tools = list(record.get("tools") or [])
    scenario = record.get("scenario")
    return {
        "id": str(record.get("id") or ""),
        "messages": out,
        "tools": json.dumps(tools, ensure_ascii=False) if tools_as_json else tools,
        "scenario": json.dumps(scenario, ensure_ascii=False) if tools_as_json else scenario,
    }
