"""The shape of a run's trajectories: distributions, patterns, judge scores, and the shift
from grounded to refined dialogues set beside the GEM paper's.

Pure: works on the light record and reject rows `load.py` reads, over the whole run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gem_graph.report.charts import bars, histogram
from gem_graph.report.load import RecordRow, RejectRow

SHAPE_FIELDS = (
    ("messages", "messages"),
    ("user_turns", "user turns"),
    ("tool_calls", "tool calls"),
    ("distinct_tools", "distinct tools"),
    ("errors_recovered", "errors recovered"),
)
"""`stats` fields whose distribution the overview draws, with their labels."""
RUBRICS = ("R1", "R2", "R3", "R4")
PAPER = {
    "source": "GEM paper (Unlocking Implicit Experience, ACL 2026), reported means",
    "grounded": {"messages": 30.0, "tool_calls": 7.8},
    "refined": {"messages": 46.0, "tool_calls": 16.3},
}
"""The paper's reported shift per trajectory from grounded to refined dialogues."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summary_numbers(values: Sequence[int]) -> dict[str, float | int | None]:
    """n, mean, median, min and max of `values` (None when empty)."""
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "median": float(statistics.median(values)),
        "min": min(values),
        "max": max(values),
    }


def shape(records: Sequence[RecordRow]) -> list[dict[str, Any]]:
    """Per `SHAPE_FIELDS` entry: summary numbers and a histogram over every kept record."""
    out = []
    for field, label in SHAPE_FIELDS:
        values = [v for r in records if (v := _int(r.stats.get(field))) is not None]
        out.append(
            {
                "field": field,
                "label": label,
                **summary_numbers(values),
                "chart": histogram(Counter(values), unit=label),
            }
        )
    return out


def patterns(records: Sequence[RecordRow]) -> dict[str, Any]:
    """How many kept records exercise each behaviour pattern."""
    counts: Counter[str] = Counter()
    for record in records:
        found = record.stats.get("patterns")
        if isinstance(found, list):
            counts.update(p for p in set(found) if isinstance(p, str))
    rows = counts.most_common()
    total = len(records)
    return {
        "rows": [
            {"pattern": p, "count": n, "share": n / total if total else None} for p, n in rows
        ],
        "chart": bars([(p, [n]) for p, n in rows]),
    }


def judge(records: Sequence[RecordRow], rejects: Sequence[RejectRow]) -> dict[str, Any]:
    """Per rubric: how many judged trajectories passed it (kept ones and judge rejects).

    A kept record carries every verdict. A judge reject carries the rubrics it failed, so
    the rubrics the kept records name (R1 to R4 when none is kept) count as passed for it.
    """
    labels = sorted({label for r in records for label in r.rubrics}) or list(RUBRICS)
    passed: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    per_item: Counter[int] = Counter()
    for record in records:
        if not record.rubrics:
            continue
        ok = 0
        for label, verdict in record.rubrics.items():
            judged[label] += 1
            if isinstance(verdict, dict) and verdict.get("passed"):
                passed[label] += 1
                ok += 1
        per_item[ok] += 1
    for reject in rejects:
        if reject.stage != "judge" or reject.code != "judge_failed":
            continue
        failed = set(reject.failed_rubrics)
        for label in labels:
            judged[label] += 1
            passed[label] += label not in failed
        per_item[len([label for label in labels if label not in failed])] += 1
    rows: list[dict[str, Any]] = [
        {
            "rubric": label,
            "judged": judged[label],
            "passed": passed[label],
            "rate": passed[label] / judged[label] if judged[label] else None,
        }
        for label in labels
        if judged[label]
    ]
    return {
        "rows": rows,
        "chart": bars(
            [(row["rubric"], [100 * row["rate"]]) for row in rows],
            texts=[[f"{100 * row['rate']:.0f}% of {row['judged']:,}"] for row in rows],
            max_value=100,
        ),
        "per_item": histogram(per_item, unit="rubrics passed"),
        "judged": sum(per_item.values()),
    }


def _group(records: Sequence[RecordRow]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(records)}
    for field in ("messages", "tool_calls"):
        values = [v for r in records if (v := _int(r.stats.get(field))) is not None]
        out[field] = round(statistics.fmean(values), 1) if values else None
    return out


def shift(records: Sequence[RecordRow]) -> dict[str, Any]:
    """Grounded against refined trajectories, beside the paper's numbers.

    The store keeps each document's final trajectory only: a refined one, or the grounded
    one when refinement was off or ran out (`stats.refined` false). Synthesizer-mode
    records are a third group.
    """
    groups = {
        "grounded": [r for r in records if r.mode != "synthesizer" and not r.stats.get("refined")],
        "refined": [r for r in records if r.mode != "synthesizer" and r.stats.get("refined")],
        "synthesizer": [r for r in records if r.mode == "synthesizer"],
    }
    ours = {name: _group(rows) for name, rows in groups.items() if rows or name != "synthesizer"}
    series = [f"this run, {name}" for name in ours] + ["paper, grounded", "paper, refined"]
    chart_rows: list[tuple[str, list[float | None]]] = []
    for field, label in (("messages", "messages"), ("tool_calls", "tool calls")):
        values: list[float | None] = [group[field] for group in ours.values()]
        values += [PAPER["grounded"][field], PAPER["refined"][field]]  # type: ignore[index]
        chart_rows.append((label, values))
    return {
        "groups": ours,
        "paper": PAPER,
        "chart": bars(chart_rows, series),
        "note": (
            "The run store keeps one final trajectory per document: refined, or grounded "
            "where refinement was off or ran out. The two columns are different documents, "
            "not the same dialogue before and after."
        ),
    }
