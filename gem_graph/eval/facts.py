"""Required facts: values from tool outputs that an agent must tell the user. Pure.

A task's required facts are derived from its reference dialogue: a value is required when
the state change includes it (an inserted row or an updated row's new value; when the change
holds no such value, as in a read-only task, what it looked up is the point, and any
value counts), a tool output returned it, the reference assistant stated it to the user,
the user or the system prompt did not already know it, and no call took it as an argument
(an id the agent looked up and passed on is a means, not a result to report). Only identifiers,
dates and amounts count (strings holding a digit, and numbers other than small integers):
words such as a status would match ordinary prose by accident.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_SMALL_INT = 10
"""Integers below this (counts, flags, quantities) are too common to be a fact."""
_MAX_FACTS = 20


def _leaves(value: Any) -> Iterator[Any]:
    """The scalar values inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield value


def is_fact_like(value: Any) -> bool:
    """An identifier, date or amount: a string with a digit, or a number that is not tiny."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        text = value.strip()
        return 2 <= len(text) <= 80 and any(ch.isdigit() for ch in text)
    if isinstance(value, int):
        return abs(value) >= _SMALL_INT
    if isinstance(value, float):
        return math.isfinite(value) and not (value.is_integer() and abs(value) < _SMALL_INT)
    return False


def told(value: Any, texts: Iterable[str]) -> bool:
    """Whether any of `texts` states `value`: a number in any format, a string whole-word."""
    if isinstance(value, bool):
        return False
    texts = [text for text in texts if isinstance(text, str)]
    if isinstance(value, int | float):
        target = float(value)
        for text in texts:
            for token in _NUMBER.findall(text):
                try:
                    if math.isclose(float(token.replace(",", "")), target, abs_tol=1e-9):
                        return True
                except ValueError:
                    continue
        return False
    needle = str(value).strip().casefold()
    if not needle:
        return False
    pattern = re.compile(r"(?<![0-9a-z_])" + re.escape(needle) + r"(?![0-9a-z_])")
    return any(pattern.search(text.casefold()) for text in texts)


def _changed_values(state_diff: Any) -> list[Any]:
    """Values the state change wrote: inserted rows, and updated rows' new values."""
    found: list[Any] = []
    if not isinstance(state_diff, dict):
        return found
    for table in state_diff.values():
        if not isinstance(table, dict):
            continue
        for row in table.get("inserted") or []:
            found.extend(_leaves(row))
        for change in table.get("updated") or []:
            if isinstance(change, dict):
                found.extend(_leaves(change.get("after")))
    return found


def _text(content: Any) -> str:
    return content if isinstance(content, str) else ""


def _tool_values(content: Any) -> list[Any]:
    try:
        return list(_leaves(json.loads(_text(content))))
    except ValueError:
        return []


def _key(value: Any) -> str:
    return json.dumps(float(value) if isinstance(value, int | float) else value)


def required_facts(messages: list[dict[str, Any]], state_diff: Any) -> list[dict[str, Any]]:
    """The facts of a reference dialogue the agent must tell: `[{"value", "tool"}]`.

    `messages` is the reference dialogue in OpenAI chat format (system included).
    """
    known = [_text(m.get("content")) for m in messages if m.get("role") in ("system", "user")]
    said = [_text(m.get("content")) for m in messages if m.get("role") == "assistant"]
    changed = {_key(v) for v in _changed_values(state_diff) if is_fact_like(v)}
    names: dict[str, str] = {}
    passed: set[str] = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                passed.update(_key(v) for v in _tool_values(function.get("arguments")))
    facts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for message in messages:
        if message.get("role") != "tool":
            continue
        tool = names.get(str(message.get("tool_call_id")), "")
        for value in _tool_values(message.get("content")):
            key = _key(value)
            if key in seen or key in passed or not is_fact_like(value):
                continue
            if changed and key not in changed:
                continue
            if told(value, known) or not told(value, said):
                continue
            seen.add(key)
            facts.append({"value": value, "tool": tool})
    return facts[:_MAX_FACTS]
