"""The problem record every check returns, and its stable codes."""

from __future__ import annotations

from typing import Final

from gem_graph.contracts.record import Problem

ProblemDict = Problem
"""The problem record (`gem_graph.contracts.Problem`), under the name the checks use."""


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
        "ungrounded_claim",  # the assistant's text states something nothing supports
        "contradicts_output",  # the assistant's text contradicts a tool output field
        "false_success",  # success reported after the call failed
        "unbacked_action",  # an action claimed that no successful call performed
        "repetition",  # a loop of identical calls
        "too_long",  # more messages than the limit
        "leak",  # tool source code in the system prompt
        "missing_confirmation",  # a confirm_before tool called without the user's agreement
        "unsupported_by_source",  # a blueprint quote that does not occur in the source text
        "tools_mismatch",  # a record's tools differ from its environment's
        "environment_mismatch",  # a record names another environment (name or hash)
        "state_mismatch",  # a record's final state hash or diff is not the replay's
        "infrastructure",  # the sandbox failed, not the tool code; the document is retried
        "gold_failed",  # the kept record's own reference cannot pass it as an eval task
        "trivial_task",  # an agent doing nothing would pass the record as an eval task
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
