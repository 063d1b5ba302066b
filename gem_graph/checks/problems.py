"""The problem record every check returns, and its stable codes."""

from __future__ import annotations

from typing import Final, TypedDict


class ProblemDict(TypedDict):
    code: str
    message: str
    where: str


CODES: Final[frozenset[str]] = frozenset(
    {
        "unknown_tool",
        "malformed_arguments",
        "invalid_arguments",
        "missing_tool_response",
        "orphan_tool_response",
        "turn_order",
        "output_mismatch",
        "unexpected_error",
        "unexpected_success",
        "ungrounded_value",
        "environment_crash",
        "nondeterministic",
        "sandbox_violation",
        "invalid_tool_schema",
        # Added codes (the contract allows additions; existing ones keep their meaning).
        "invalid_output",
        "irrelevant",
        "pattern_quota",
        "invalid_environment",
        "lint",
        "judge_failed",
        "transport",
        "invalid_input",
        "internal_error",
        "invalid_blueprint",
        "invalid_record",  # a verify input line that is not a usable record
        "tools_mismatch",  # a record's tools differ from its environment's
        "environment_mismatch",  # a record names another environment (name or hash)
        "state_mismatch",  # a record's final state hash or diff is not the replay's
    }
)


def problem(code: str, message: str, where: str = "") -> ProblemDict:
    """Build a problem; `code` must be one of `CODES` so consumers can rely on it."""
    if code not in CODES:
        raise ValueError(f"unknown problem code {code!r}")
    return {"code": code, "message": message, "where": where}


def format_feedback(problems: list[ProblemDict], limit: int = 20) -> str:
    """Render problems as the bullet list fed back into the next prompt."""
    lines = [
        f"- [{p['code']}] {p['where']}: {p['message']}"
        if p["where"]
        else f"- [{p['code']}] {p['message']}"
        for p in problems[:limit]
    ]
    if len(problems) > limit:
        lines.append(f"- ... and {len(problems) - limit} more problems of the same kinds")
    return "\n".join(lines)
