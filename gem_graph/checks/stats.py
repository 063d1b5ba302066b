"""Counts that describe a dialogue, and the behaviour-pattern quota.

Public API:
- `trajectory_stats(messages, patterns=None) -> DialogueStats`: the record's `stats`, keys
  `messages`, `user_turns`, `assistant_turns`, `tool_calls`, `distinct_tools`, `tool_errors`,
  `errors_recovered` (ints) and `patterns` (sorted distinct pattern names).
- `check_patterns(patterns, minimum) -> list[ProblemDict]`: code `pattern_quota`.
- `is_tool_error(content) -> bool`: whether a tool message's content is an error output.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from gem_graph.checks.messages import call_name, iter_tool_calls
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.contracts.record import DialogueStats
from gem_graph.schemas import PATTERNS

MAX_PATTERN_USES = 2
"""The GEM method: each pattern at most twice per dialogue."""


def is_tool_error(content: Any) -> bool:
    """True when a tool message's content is a JSON object with an "error" key."""
    if not isinstance(content, str):
        return False
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and "error" in value


def trajectory_stats(messages: Any, patterns: Any = None) -> DialogueStats:
    """Counts over a dialogue; malformed entries are skipped, never raised on.

    `errors_recovered` counts the tool errors that are followed, later in the dialogue, by a
    successful call of the same tool.
    """
    items = messages if isinstance(messages, list) else []
    roles = Counter(
        role for m in items if isinstance(m, dict) and isinstance(role := m.get("role"), str)
    )
    names: list[str] = []
    outcomes: list[tuple[str, bool]] = []  # (tool name, failed) for each answered call
    for site in iter_tool_calls(items):
        name = call_name(site.call)
        label = name if isinstance(name, str) else ""
        names.append(label)
        if site.response is not None:
            outcomes.append((label, is_tool_error(site.response.get("content"))))
    recovered = sum(
        1
        for position, (name, failed) in enumerate(outcomes)
        if failed and any(n == name and not f for n, f in outcomes[position + 1 :])
    )
    tool_errors = sum(
        1
        for m in items
        if isinstance(m, dict) and m.get("role") == "tool" and is_tool_error(m.get("content"))
    )
    pattern_list = patterns if isinstance(patterns, list | tuple) else []
    return {
        "messages": len(items),
        "user_turns": roles["user"],
        "assistant_turns": roles["assistant"],
        "tool_calls": len(names),
        "distinct_tools": len({n for n in names if n}),
        "tool_errors": tool_errors,
        "errors_recovered": recovered,
        "patterns": sorted({p for p in pattern_list if isinstance(p, str)}),
    }


def check_patterns(patterns: Any, minimum: int) -> list[ProblemDict]:
    """Each pattern known and used at most twice; at least `minimum` distinct patterns."""
    if not isinstance(patterns, list | tuple):
        return [
            problem(
                "pattern_quota",
                f"patterns must be a list of pattern names, got {type(patterns).__name__}",
                "patterns",
            )
        ]
    problems: list[ProblemDict] = []
    counts = Counter(p for p in patterns if isinstance(p, str))
    for item in patterns:
        if not isinstance(item, str) or item not in PATTERNS:
            problems.append(
                problem(
                    "pattern_quota",
                    f"unknown pattern {item!r}; use only {', '.join(PATTERNS)}",
                    "patterns",
                )
            )
    for name, count in sorted(counts.items()):
        if name in PATTERNS and count > MAX_PATTERN_USES:
            problems.append(
                problem(
                    "pattern_quota",
                    f"pattern {name!r} is listed {count} "
                    f"times; each pattern may be used at most "
                    f"{MAX_PATTERN_USES} times",
                    "patterns",
                )
            )
    distinct = sorted(name for name in counts if name in PATTERNS)
    if len(distinct) < minimum:
        used = ", ".join(distinct) or "none"
        problems.append(
            problem(
                "pattern_quota",
                f"the dialogue uses {len(distinct)} distinct "
                f"patterns ({used}); at least {minimum} of {', '.join(PATTERNS)} "
                "are required",
                "patterns",
            )
        )
    return problems
