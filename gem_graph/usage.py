"""Per-stage usage accounting: one entry per model call, totals per stage and run."""

from __future__ import annotations

from typing import Any, TypedDict

from gem_graph.contracts.record import Usage


class UsageEntry(TypedDict):
    """One model call: its stage, tokens and seconds."""

    stage: str
    calls: int
    input_tokens: int
    output_tokens: int
    seconds: float


def usage_entry(stage: str, message: Any, seconds: float) -> UsageEntry:
    """One model call's usage record, from the reply's `usage_metadata`."""
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "stage": stage,
        "calls": 1,
        "input_tokens": int(meta.get("input_tokens", 0) or 0),
        "output_tokens": int(meta.get("output_tokens", 0) or 0),
        "seconds": round(seconds, 4),
    }


def summarize_usage(entries: list[UsageEntry]) -> Usage:
    """Per-stage totals of calls, tokens and seconds, plus a `total` row."""
    totals: Usage = {}
    for entry in entries:
        for key in (entry["stage"], "total"):
            row = totals.setdefault(
                key, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "seconds": 0.0}
            )
            row["calls"] += entry["calls"]
            row["input_tokens"] += entry["input_tokens"]
            row["output_tokens"] += entry["output_tokens"]
            row["seconds"] = round(row["seconds"] + entry["seconds"], 4)
    return totals
