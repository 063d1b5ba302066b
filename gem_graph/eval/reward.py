"""The reward of an episode: 1 when the final state is the expected one and every
required fact was told to the user, else 0 with the reason. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

from gem_graph.eval.facts import told
from gem_graph.eval.task import EvalTask

Reason = Literal[
    "ok",
    "state_mismatch",
    "missing_facts",
    "max_turns",
    "time_budget",
    "token_budget",
    "environment_crash",
    "agent_error",
]
REASONS: tuple[str, ...] = Reason.__args__  # type: ignore[attr-defined]


class Reward(BaseModel):
    """A scored episode: `reward` 1.0 or 0.0, the first reason it failed, and details."""

    reward: float
    reason: Reason
    state_matches: bool
    missing_facts: list[str | int | float]
    detail: str = ""


def assistant_texts(messages: Iterable[dict[str, Any]]) -> list[str]:
    """What the agent said to the user: the text of its assistant turns."""
    return [
        m["content"]
        for m in messages
        if m.get("role") == "assistant" and isinstance(m.get("content"), str)
    ]


def score(
    task: EvalTask,
    final_sha256: str | None,
    messages: list[dict[str, Any]],
    final_diff: dict[str, Any] | None = None,
) -> Reward:
    """Score a finished episode's final state and transcript against the task."""
    state_matches = final_sha256 == task.expected_final_state_sha256
    said = assistant_texts(messages)
    missing = [fact.value for fact in task.required_facts if not told(fact.value, said)]
    if not state_matches:
        detail = "the final database differs from the expected one"
        if final_diff is not None:
            detail += f": {_diff_summary(task.expected_state_diff, final_diff)}"
        return Reward(
            reward=0.0,
            reason="state_mismatch",
            state_matches=False,
            missing_facts=missing,
            detail=detail,
        )
    if missing:
        shown = ", ".join(json.dumps(value) for value in missing[:5])
        return Reward(
            reward=0.0,
            reason="missing_facts",
            state_matches=True,
            missing_facts=missing,
            detail=f"the agent never told the user {shown}",
        )
    return Reward(reward=1.0, reason="ok", state_matches=True, missing_facts=[])


def zero(reason: Reason, detail: str) -> Reward:
    """A 0 reward for an episode cut short (turns, time, tokens) or broken by the tools."""
    return Reward(reward=0.0, reason=reason, state_matches=False, missing_facts=[], detail=detail)


def _diff_summary(expected: dict[str, Any], actual: dict[str, Any]) -> str:
    """Per table, how many rows each side inserted, updated and deleted."""

    def counts(diff: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
        out = {}
        for table, change in diff.items():
            if isinstance(change, dict):
                sizes = tuple(len(change.get(k) or []) for k in ("inserted", "updated", "deleted"))
                if any(sizes):
                    out[str(table)] = (sizes[0], sizes[1], sizes[2])
        return out

    want, got = counts(expected), counts(actual)
    parts = [
        f"{table} expected +{w[0]}/~{w[1]}/-{w[2]}, got +{g[0]}/~{g[1]}/-{g[2]}"
        for table in sorted(set(want) | set(got))
        if (w := want.get(table, (0, 0, 0))) != (g := got.get(table, (0, 0, 0)))
    ]
    return "; ".join(parts) or "same rows touched, different values"
