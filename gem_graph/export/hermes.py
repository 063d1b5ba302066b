"""The `hermes` export format: `{"text"}` in the Hermes tool-calling template (ChatML).

Turns are ChatML (`<|im_start|>role\\n…<|im_end|>`). The tools are JSON lines inside
`<tools></tools>` in the system turn, each call is
`<tool_call>{"name", "arguments"}</tool_call>` in the assistant turn, and tool results are
`<tool_response>…</tool_response>`. Consecutive tool results share one turn whose role is
`user`, as in the Qwen templates the paper fine-tuned (Hermes-2-Pro models use `tool`:
pass `tool_role="tool"`). `parse_hermes` reads the calls back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gem_graph.export.dialogue import (
    ExportError,
    as_text,
    call_arguments,
    call_name,
    calls_of,
    messages_of,
    split_system,
    tool_functions,
)

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
HERMES_TOOLS_PREAMBLE = (
    "# Tools\n\n"
    "You can call functions to help with the user's request. Their signatures are listed "
    "below, one JSON object per line, inside <tools></tools> tags:\n"
)
HERMES_CALL_INSTRUCTIONS = (
    "To call a function, answer with a JSON object holding its name and its arguments "
    "inside <tool_call></tool_call> tags, one block per call:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <arguments-object>}\n</tool_call>'
)


def _chatml(role: str, content: str) -> str:
    return f"{IM_START}{role}\n{content}{IM_END}\n"


def _hermes_system(system: str, tools: list[dict[str, Any]]) -> str:
    """The system turn's text: the system prompt, then the tool block if there are tools."""
    if not tools:
        return system
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    block = f"{HERMES_TOOLS_PREAMBLE}<tools>\n{lines}\n</tools>\n\n{HERMES_CALL_INSTRUCTIONS}"
    return f"{system}\n\n{block}" if system else block


def _hermes_call(call: dict[str, Any]) -> str:
    value = {"name": call_name(call), "arguments": call_arguments(call)}
    return f"<tool_call>\n{json.dumps(value, ensure_ascii=False)}\n</tool_call>"


def to_hermes(record: dict[str, Any], *, tool_role: str = "user") -> dict[str, Any]:
    """`{"text"}`: the dialogue rendered with the Hermes tool-calling template (ChatML)."""
    system, rest = split_system(messages_of(record))
    tools = list(record.get("tools") or [])
    tool_functions(tools)  # validates the format
    parts = [_chatml("system", _hermes_system(system, tools))] if system or tools else []
    pending: list[str] = []
    for message in rest:
        role = message["role"]
        if role == "tool":
            pending.append(f"<tool_response>\n{as_text(message.get('content'))}\n</tool_response>")
            continue
        if pending:
            parts.append(_chatml(tool_role, "\n".join(pending)))
            pending = []
        content = as_text(message.get("content"))
        if role == "assistant" and calls_of(message):
            blocks = [_hermes_call(c) for c in calls_of(message)]
            content = "\n".join([content, *blocks] if content else blocks)
        parts.append(_chatml(role, content))
    if pending:
        parts.append(_chatml(tool_role, "\n".join(pending)))
    return {"text": "".join(parts)}


_ASSISTANT_TURN = re.compile(
    re.escape(IM_START) + r"assistant\n(.*?)" + re.escape(IM_END), re.DOTALL
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_hermes(text: str) -> list[dict[str, Any]]:
    """The calls of every assistant turn of a Hermes text: `[{"name", "arguments"}]`, in order.

    Raises `ExportError` for a `<tool_call>` block that is not a JSON object with a name.
    """
    calls: list[dict[str, Any]] = []
    for turn in _ASSISTANT_TURN.finditer(text):
        for block in _TOOL_CALL.finditer(turn.group(1)):
            try:
                value = json.loads(block.group(1))
            except ValueError as exc:
                raise ExportError(f"a <tool_call> block is not JSON: {exc}") from None
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                raise ExportError("a <tool_call> block has no function name")
            arguments = value.get("arguments", {})
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            calls.append({"name": value["name"], "arguments": arguments})
    return calls
