"""Reading a dialogue in OpenAI chat format as written: texts, calls and their answers.

Pure and tolerant: every accessor takes whatever a record holds and returns None or ""
where a well-formed dialogue would have a value, so checks can report instead of crash.

Public API:
- `iter_tool_calls(messages) -> Iterator[ToolCallSite]`: walk the calls in dialogue order.
- `ToolCallSite(message_index, call_index, call, response)`: a named 4-tuple.
- `find_response(messages, message_index, call_id) -> int | None`: index of the tool message
  answering a call.
- `message_text(message) -> str`: a message's text content ("" when it has none).
- `call_name(call)`, `call_arguments(call)`: a call's function name and raw arguments as
  written (None when absent; may be garbage).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

ROLES = ("system", "user", "assistant", "tool")


class ToolCallSite(NamedTuple):
    """One tool call found by `iter_tool_calls`."""

    message_index: int
    """Index of the assistant message that issued the call."""
    call_index: int
    """Index of the call within that message's `tool_calls`."""
    call: dict[str, Any]
    """The call as written: `{"id", "type", "function": {"name", "arguments"}}`."""
    response: dict[str, Any] | None
    """The tool message answering it, or None when there is none."""


def message_text(message: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content list."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _role(message: Any) -> str | None:
    if isinstance(message, dict) and message.get("role") in ROLES:
        return str(message["role"])
    return None


def _calls(message: Any) -> list[Any]:
    """The `tool_calls` list of an assistant message, or [] when it has none (or garbage)."""
    if _role(message) != "assistant":
        return []
    calls = message.get("tool_calls")
    return calls if isinstance(calls, list) else []


def call_name(call: Any) -> Any:
    """The function name of a call as written (may be garbage; None when absent)."""
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        return call["function"].get("name")
    return None


def call_arguments(call: Any) -> Any:
    """The raw `arguments` of a call as written (normally a JSON string; None when absent)."""
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        return call["function"].get("arguments")
    return None


def find_response(messages: Any, message_index: int, call_id: Any) -> int | None:
    """Index of the first tool message answering `call_id` in the block of tool messages that
    directly follows `messages[message_index]`; None if there is none."""
    if not isinstance(messages, list) or not isinstance(call_id, str):
        return None
    for index in range(message_index + 1, len(messages)):
        message = messages[index]
        if _role(message) != "tool":
            return None
        if message.get("tool_call_id") == call_id:
            return index
    return None


def iter_tool_calls(messages: Any) -> Iterator[ToolCallSite]:
    """Yield every call (a dict) of every assistant message, in order, with its response.

    Malformed entries (non-dict messages or calls, non-list `tool_calls`) are skipped; run
    `check_trajectory` to report them. When two calls of one message share an id, only the
    first is paired with the response.
    """
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        paired: set[int] = set()
        for call_index, call in enumerate(_calls(message)):
            if not isinstance(call, dict):
                continue
            found = find_response(messages, index, call.get("id"))
            response = None
            if found is not None and found not in paired:
                paired.add(found)
                response = messages[found]
            yield ToolCallSite(index, call_index, call, response)
