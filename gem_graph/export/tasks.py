"""The `tasks` export format: an evaluation task per executed record.

`instruction` is the FIRST user turn (the opening request); `user_turns` lists every user
turn in order, for a scripted or simulated user; plus the environment reference, the
scenario (clock and extra rows), tools, the system prompt, and the expected final state
hash and row diff. Only executed records (with `verification.final_state_sha256`) can
become tasks.
"""

from __future__ import annotations

from typing import Any

from gem_graph.export.dialogue import ExportError, as_text, messages_of, split_system


def to_task(record: dict[str, Any]) -> dict[str, Any]:
    """An evaluation task: the request, the environment and the expected final state."""
    system, rest = split_system(messages_of(record))
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
    return {
        "id": record.get("id"),
        "instruction": user_turns[0],
        "user_turns": user_turns,
        "environment": {"name": environment["name"], "sha256": environment.get("sha256")},
        "scenario": record.get("scenario") or {"now": None, "rows": {}},
        "tools": list(record.get("tools") or []),
        "system": system,
        "expected_final_state_sha256": expected,
        "expected_state_diff": verification.get("state_diff") or {},
    }
