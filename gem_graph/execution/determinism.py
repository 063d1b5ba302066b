"""Are two replays of the same calls (with different salts) the same? Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gem_graph.checks.execution import same_json
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.execution.replay import Call, Replay

ADVICE = "take time, ids and randomness only from gem_graph.runtime (now, new_id, rng)"


def compare_replays(first: Replay, second: Replay, calls: list[Call]) -> list[ProblemDict]:
    """`nondeterministic` at the first call whose output differs, or for the final state."""
    for call, a, b in zip(calls, first.results, second.results, strict=False):
        if a.get("status") != b.get("status") or not same_json(output(a), output(b)):
            return [
                problem(
                    "nondeterministic",
                    f"replaying {call.name!r} gave a different output the second time: "
                    f"{_brief(output(a))} vs {_brief(output(b))}; {ADVICE}",
                    call.where,
                )
            ]
    if len(first.results) != len(second.results) or second.problems:
        return [problem("nondeterministic", "the second replay did not run the same calls")]
    if first.final is None or second.final is None:
        return []
    if first.final["sha256"] != second.final["sha256"]:
        return [
            problem(
                "nondeterministic",
                f"replaying the same calls left a different final database; {ADVICE}",
            )
        ]
    return []


def output(real: Mapping[str, Any]) -> Any:
    """What a call gave back: its result, or its error message."""
    return real.get("result") if real.get("status") == "ok" else real.get("error")


def _brief(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
