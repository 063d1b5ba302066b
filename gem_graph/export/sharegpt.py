"""The `sharegpt` export format: LLaMA-Factory's tool format.

`conversations` of `{"from", "value"}` with `human`/`observation` in the 1st, 3rd, …
turns (indexes 0, 2, …) and `gpt`/`function_call` in the 2nd, 4th, …, an even count, plus
`system` and `tools` (a JSON string of the function definitions). To make roles
alternate exactly:

* each call becomes its own `function_call` turn (`{"name", "arguments": {...}}`),
  followed by its own `observation`; an assistant message with several calls is split
  into call/observation pairs in call order, the order in which they were executed;
* assistant text sent together with calls is dropped: no `gpt` turn can precede a
  `function_call` turn (both sit at odd indexes) and the call value must be pure JSON;
* adjacent turns of the same role (two user or two text-only assistant messages) are
  joined with a blank line;
* a trailing `human` or `observation` turn (nothing answers it) is dropped.
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
    responses_by_call,
    split_system,
    tool_functions,
)

_EVEN_ROLES = ("human", "observation")
_ODD_ROLES = ("gpt", "function_call")


def _sharegpt_turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The raw turns in dialogue order: one function_call + observation pair per call."""
    responses = responses_by_call(messages)
    answered: set[str] = set()
    turns: list[tuple[str, str]] = []
    for message in messages:
        role = message["role"]
        if role == "user":
            turns.append(("human", as_text(message.get("content"))))
        elif role == "assistant" and calls_of(message):
            for call in calls_of(message):
                call_id = str(call.get("id"))
                response = responses.get(call_id)
                if response is None:
                    raise ExportError(f"call {call_id!r} has no tool response")
                answered.add(call_id)
                value = {"name": call_name(call), "arguments": call_arguments(call)}
                turns.append(("function_call", json.dumps(value, ensure_ascii=False)))
                turns.append(("observation", as_text(response.get("content"))))
        elif role == "assistant":
            turns.append(("gpt", as_text(message.get("content"))))
    orphans = sorted(set(responses) - answered)
    if orphans:
        raise ExportError(f"tool messages answer no call: {', '.join(orphans)}")
    return turns


def _alternate(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge or drop turns so roles alternate as LLaMA-Factory requires (see module doc)."""
    fixed: list[tuple[str, str]] = []
    for role, value in turns:
        if fixed and (fixed[-1][0] in _ODD_ROLES) == (role in _ODD_ROLES):
            previous, text = fixed[-1]
            if previous == role and role in ("human", "gpt"):
                fixed[-1] = (role, f"{text}\n\n{value}" if text and value else text or value)
                continue
            if previous == "gpt" and role == "function_call":
                fixed[-1] = (role, value)  # text before a call has no place of its own
                continue
            raise ExportError(
                f"turn {len(fixed)}: {role!r} cannot follow {previous!r} in LLaMA-Factory's "
                "sharegpt format"
            )
        if not fixed and role not in _EVEN_ROLES:
            raise ExportError(f"the conversation must open with a user turn, not {role!r}")
        fixed.append((role, value))
    while fixed and fixed[-1][0] in _EVEN_ROLES:
        fixed.pop()
    if not fixed:
        raise ExportError("no assistant turn to train on")
    return fixed


def to_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """`{"conversations", "system", "tools"}` in LLaMA-Factory's sharegpt tool format."""
    system, rest = split_system(messages_of(record))
    turns = _alternate(_sharegpt_turns(rest))
    return {
        "conversations": [{"from": role, "value": value} for role, value in turns],
        "system": system,
        "tools": json.dumps(tool_functions(record.get("tools")), ensure_ascii=False),
    }
