"""The `tasks` export format: an evaluation task per executed record.

Each row holds what `gem-graph eval` and the environment API need to play and score an
episode:

- `instruction` (the FIRST user turn) and `user_turns` (every user turn, in order), for a
  scripted user; `user_goal` (who the user is, what they want, the facts they know, what
  they accept or refuse), for a simulated one. Records written before goals existed
  export with `user_goal: null` and `goal_missing: true`;
- the environment reference, the scenario (clock and extra rows), the tools and the system
  prompt;
- what success means: `expected_final_state_sha256`, `expected_state_diff`, and
  `required_facts`, the values from tool outputs the agent must tell the user
  (`gem_graph.eval.facts`);
- `reference_messages`, the verified dialogue, which the gold agent replays.

Only executed records (with `verification.final_state_sha256`) can become tasks, and only
when their own reference could pass: a record whose state is unknown or whose replay had
errors the sandbox reported is skipped with its reason.
"""

from __future__ import annotations

from typing import Any

from gem_graph.eval.facts import required_facts
from gem_graph.eval.gold import gold_problems
from gem_graph.export.dialogue import ExportError, as_text, messages_of, split_system

TASK_FORMAT = 2
"""1: instruction, scenario and expected state only; 2: adds the goal, facts and reference."""


def to_task(record: dict[str, Any]) -> dict[str, Any]:
    """An evaluation task: the request, the goal, the environment and what success means."""
    messages = messages_of(record)
    system, rest = split_system(messages)
    user_turns = [as_text(m.get("content")) for m in rest if m["role"] == "user"]
    if not user_turns:
        raise ExportError("record has no user turn")
    verification = record.get("verification") or {}
    expected = verification.get("final_state_sha256")
    if not expected:
        raise ExportError(
            "record was not executed (no verification.final_state_sha256); "
            "tasks need a run with execution on"
        )
    environment = record.get("environment") or {}
    if not environment.get("name"):
        raise ExportError("record names no environment")
    _check_gold(record)
    goal = record.get("user_goal")
    diff = verification.get("state_diff") or {}
    return {
        "task_format": TASK_FORMAT,
        "id": record.get("id"),
        "instruction": user_turns[0],
        "user_turns": user_turns,
        "user_goal": goal if isinstance(goal, dict) else None,
        "goal_missing": not isinstance(goal, dict),
        "environment": {"name": environment["name"], "sha256": environment.get("sha256")},
        "scenario": record.get("scenario") or {"now": None, "rows": {}},
        "tools": list(record.get("tools") or []),
        "system": system,
        "expected_final_state_sha256": expected,
        "expected_state_diff": diff,
        "required_facts": required_facts(messages, diff),
        "reference_messages": [dict(m) for m in rest],
    }


def _check_gold(record: dict[str, Any]) -> None:
    """Refuse a task whose own reference could not pass it (`gem_graph.eval.gold`)."""
    problems = gold_problems(record)
    if problems:
        raise ExportError(f"{problems[0]}; its gold cannot pass")
