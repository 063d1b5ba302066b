"""Dialogue hygiene: loops of identical calls, runaway length, tool code in the prompt.

Public API:
- `check_hygiene(messages, *, max_messages, max_identical_calls, tool_sources)
  -> list[ProblemDict]`, codes:
  - `repetition`: a run of more than `max_identical_calls` identical calls (same tool, same
    arguments as parsed JSON) with no user turn in between; reported once per run, at the
    first call beyond the limit. A user asking again starts a new run.
  - `too_long`: more than `max_messages` messages.
  - `leak`: a system message that contains tool source code: `def name(` of a function
    defined in `tool_sources`, or 3 consecutive non-trivial source lines (ignoring
    indentation; trivial lines are blank, comments, or shorter than 12 characters).
Pure: no I/O; `tool_sources` is read as text, never executed or imported.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gem_graph import strictjson
from gem_graph.checks.messages import call_arguments, call_name, message_text
from gem_graph.checks.problems import ProblemDict, problem

_DEF = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
LEAK_RUN = 3
"""Consecutive non-trivial lines of tool code in a system message that make a leak."""


def check_hygiene(
    messages: Any,
    *,
    max_messages: int = 200,
    max_identical_calls: int = 3,
    tool_sources: str | None = None,
) -> list[ProblemDict]:
    """`repetition`, `too_long` and `leak` problems (see the module docstring)."""
    if not isinstance(messages, list):
        return []
    problems = _repetition(messages, max_identical_calls)
    if len(messages) > max_messages:
        problems.append(
            problem(
                "too_long",
                f"the dialogue has {len(messages)} messages, more than the limit of "
                f"{max_messages}; solve the task in fewer turns",
                "messages",
            )
        )
    if isinstance(tool_sources, str) and tool_sources.strip():
        problems.extend(_leaks(messages, tool_sources))
    return problems


def _signature(call: Any) -> tuple[str, str] | None:
    """(tool, canonical arguments) of a call, or None when it has no name."""
    name = call_name(call)
    if not isinstance(name, str):
        return None
    raw = call_arguments(call)
    try:
        arguments = (
            json.dumps(strictjson.loads(raw), sort_keys=True) if isinstance(raw, str) else ""
        )
    except strictjson.StrictJSONError:
        arguments = str(raw)
    return name, arguments


def _repetition(messages: list[Any], limit: int) -> list[ProblemDict]:
    problems: list[ProblemDict] = []
    previous: tuple[str, str] | None = None
    run = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            previous, run = None, 0
            continue
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        for call_index, call in enumerate(calls if isinstance(calls, list) else []):
            signature = _signature(call)
            run = run + 1 if signature is not None and signature == previous else 1
            previous = signature
            if run == limit + 1 and signature is not None:
                problems.append(
                    problem(
                        "repetition",
                        f"{signature[0]!r} is called {run} times in a row with the same "
                        f"arguments (at most {limit} allowed); use the output you already "
                        "have, change the arguments, or tell the user what is wrong",
                        f"messages[{index}].tool_calls[{call_index}]",
                    )
                )
    return problems


def _code_lines(source: str) -> list[str]:
    """The non-trivial lines of `source`, stripped of indentation."""
    lines = [line.strip() for line in source.splitlines()]
    return [line for line in lines if len(line) >= 12 and not line.startswith("#")]


def _leaks(messages: list[Any], source: str) -> list[ProblemDict]:
    functions = set(_DEF.findall(source))
    code = _code_lines(source)
    problems: list[ProblemDict] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "system":
            continue
        text = message_text(message)
        leaked = sorted(
            name for name in functions if re.search(rf"\bdef\s+{re.escape(name)}\s*\(", text)
        )
        prompt_lines = {line.strip() for line in text.splitlines()}
        run = 0
        copied: str | None = None
        for line in code:
            run = run + 1 if line in prompt_lines else 0
            if run >= LEAK_RUN and copied is None:
                copied = line
        if leaked or copied is not None:
            detail = (
                f"defines {', '.join(repr(f'def {name}(') for name in leaked)}"
                if leaked
                else f"copies {LEAK_RUN}+ consecutive lines of it (e.g. {copied!r})"
            )
            problems.append(
                problem(
                    "leak",
                    f"the system prompt contains the tool source code: it {detail}; the "
                    "prompt may describe the tools and the policy, never their code",
                    f"messages[{index}]",
                )
            )
    return problems
