"""Reading a record's dialogue for export: messages, system prompt, tool calls and answers.

Shared by every format. Each reader checks what it returns and raises `ExportError`, with
the reason, for a record that no format could represent.
"""

from __future__ import annotations

import json
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


class ExportError(ValueError):
    """A record that the requested format cannot represent; the message says why."""


def messages_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's messages, each checked to be a dict with a known role."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ExportError("record has no messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ExportError(f"messages[{index}] has no valid role")
    return messages


def as_text(value: Any) -> str:
    """A message content as a string: `""` for none, JSON for anything not a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The leading system message(s) joined, and the rest; a later system turn is refused."""
    index = 0
    parts = []
    while index < len(messages) and messages[index]["role"] == "system":
        parts.append(as_text(messages[index].get("content")))
        index += 1
    rest = messages[index:]
    for offset, message in enumerate(rest):
        if message["role"] == "system":
            raise ExportError(
                f"messages[{index + offset}]: a system message after the dialogue started"
            )
    return "\n\n".join(p for p in parts if p), rest


def calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of a message (none for a message that makes no call)."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ExportError("tool_calls must be a list")
    return calls


def call_name(call: Any) -> str:
    """The function name of an OpenAI-format tool call."""
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise ExportError(f"a tool call has no function name: {call!r:.200}")
    return name


def call_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments as an object (they travel as a JSON string in records)."""
    raw = call["function"].get("arguments")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except ValueError as exc:
        raise ExportError(f"call {call_name(call)!r}: arguments are not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ExportError(f"call {call_name(call)!r}: arguments are not a JSON object")
    return value


def tool_functions(tools: Any) -> list[dict[str, Any]]:
    """The function definitions of OpenAI-format tools (`{"type": "function", "function"}`)."""
    if not tools:
        return []
    if not isinstance(tools, list):
        raise ExportError("tools must be a list in OpenAI function format")
    functions = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise ExportError(f"a tool is not in OpenAI function format: {tool!r:.200}")
        functions.append(function)
    return functions


def responses_by_call(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool messages by the id of the call they answer."""
    found: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["role"] == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id in found:
                raise ExportError(f"two tool messages answer call {call_id!r}")
            found[call_id] = message
    return found
