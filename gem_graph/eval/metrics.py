"""pass^k as τ-bench defines it, overall and per environment. Pure.

For a task tried n times with c successes, pass^k is C(c, k) / C(n, k): the chance that k
trials drawn without replacement all succeed. A run's pass^k, for every k, is the mean
over the same tasks: those with all their trials scored (`complete_tasks` says how many),
so pass^k never rises with k. pass^1 is their mean reward.
"""

from __future__ import annotations

from collections import defaultdict
from math import comb
from typing import Any


def pass_hat_k(successes: list[int], trials: list[int], k: int) -> float | None:
    """Mean over tasks of C(c, k) / C(n, k); None when no task has k trials."""
    values = [comb(c, k) / comb(n, k) for c, n in zip(successes, trials, strict=True) if n >= k]
    return sum(values) / len(values) if values else None


def summarize(results: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    """Counts, pass^1..pass^trials, reasons, and the same per environment."""
    scored = [r for r in results if r.get("status") == "scored"]
    out = _block(scored, trials)
    out["episodes"] = len(results)
    out["bad_tasks"] = sorted(
        {
            (r["task_id"], r.get("reason") or "", r.get("detail") or "")
            for r in results
            if r.get("status") == "bad_task"
        }
    )
    out["failed"] = sum(1 for r in results if r.get("status") == "failed")
    by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scored:
        by_env[str(r.get("environment"))].append(r)
    out["environments"] = {name: _block(rows, trials) for name, rows in sorted(by_env.items())}
    return out


def _block(scored: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    per_task: dict[str, list[float]] = defaultdict(list)
    reasons: dict[str, int] = defaultdict(int)
    for r in scored:
        per_task[r["task_id"]].append(float(r.get("reward") or 0.0))
        reasons[str(r.get("reason"))] += 1
    complete = [values for values in per_task.values() if len(values) == trials]
    successes = [sum(1 for v in values if v >= 1.0) for values in complete]
    counts = [len(values) for values in complete]
    return {
        "tasks": len(per_task),
        "complete_tasks": len(complete),
        "scored": len(scored),
        "pass_hat": {str(k): pass_hat_k(successes, counts, k) for k in range(1, trials + 1)},
        "reasons": dict(sorted(reasons.items())),
    }
