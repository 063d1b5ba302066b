"""The end-of-run summary of a run store: counts, the per-stage funnel, top rejects, usage.

`summarize` reads the store; the helpers below it turn what it read into the summary and
are pure. The reads are aggregates (GROUP BY, SUM, DISTINCT), which no sqlite-utils
`Table` method expresses, so they are SQL run through `db.query`; plain counts and the
last session use the `Table` API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gem_graph.pipeline import LLM_STAGES, active_stages

if TYPE_CHECKING:
    from sqlite_utils import Database

STAGE_ORDER = ("input", "intake", *LLM_STAGES, "emit")
"""The order usage rows are shown in."""

USAGE_SUMS = ("calls", "input_tokens", "output_tokens", "seconds")
TOP_REJECTS = 8


def summarize(
    db: Database,
    *,
    run_dir: str,
    settings: Mapping[str, Any],
    versions: Any,
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the end-of-run table shows, from the store `db`, the run's settings and
    the capability probe's profile of the model server (`server`), if any."""
    ends = [
        (row["status"], row["stage"], int(row["n"]))
        for row in db.query(
            "SELECT status, stage, COUNT(*) AS n FROM documents GROUP BY status, stage"
        )
    ]
    counts: Counter[str] = Counter()
    for status, _, n in ends:
        counts[status] += n
    pipeline = settings.get("pipeline") or {}
    top = [
        {
            "stage": row["stage"],
            "code": row["code"],
            "count": int(row["n"]),
            "example": _first_line(row["example"]),
        }
        for row in db.query(
            "SELECT r.stage, r.code, COUNT(*) AS n, MIN(r.reason) AS example FROM rejects r "
            "JOIN documents d ON d.id = r.doc_id GROUP BY r.stage, r.code "
            f"ORDER BY n DESC, r.stage LIMIT {TOP_REJECTS}"
        )
    ]
    usage = _ordered_usage(
        db.query(
            "SELECT stage, SUM(calls) AS calls, SUM(input_tokens) AS input_tokens, "
            "SUM(output_tokens) AS output_tokens, SUM(seconds) AS seconds "
            "FROM usage GROUP BY stage"
        )
    )
    total = {key: sum(row[key] for row in usage.values()) for key in USAGE_SUMS}
    records = db.table("records").count
    wall = next(
        db.query(
            "SELECT COALESCE(SUM(COALESCE(finished_at, started_at) - started_at), 0) AS seconds, "
            "COUNT(*) AS sessions FROM sessions"
        )
    )
    isolations = [
        row["isolation"]
        for row in db.query("SELECT DISTINCT isolation FROM documents WHERE isolation IS NOT NULL")
    ]
    last = next(
        db.table("sessions").rows_where(select="stopped_reason", order_by="id DESC", limit=1),
        None,
    )
    return {
        "run_dir": run_dir,
        "documents": {
            "total": sum(counts.values()),
            "kept": counts.get("kept", 0),
            "rejected": counts.get("rejected", 0),
            "failed": counts.get("failed", 0),
        },
        "records": records,
        "environments": db.table("environments").count,
        "stages": _funnel(["input", *active_stages(pipeline)], ends),
        "top_rejects": top,
        "usage": {**usage, "total": total},
        "per_kept": {
            key: (round(total[key] / records, 1) if records else None)
            for key in ("calls", "input_tokens", "output_tokens")
        },
        "wall_seconds": round(float(wall["seconds"]), 2),
        "sessions": int(wall["sessions"]),
        "isolation": _isolation(settings, isolations),
        "model": (settings.get("model") or {}).get("name"),
        "server": (server or {}).get("summary"),
        "stopped_reason": last["stopped_reason"] if last else None,
        "versions": versions,
    }


def _ordered_usage(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per-stage usage sums, rounded and typed, in `STAGE_ORDER` (unknown stages last)."""
    usage = {
        row["stage"]: {
            "calls": int(row["calls"] or 0),
            "input_tokens": int(row["input_tokens"] or 0),
            "output_tokens": int(row["output_tokens"] or 0),
            "seconds": round(float(row["seconds"] or 0.0), 3),
        }
        for row in rows
    }
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return dict(sorted(usage.items(), key=lambda item: order.get(item[0], len(order))))


def _isolation(settings: Mapping[str, Any], isolations: list[str]) -> str:
    """How tool calls were isolated: as recorded per document, else as the settings say."""
    if not (settings.get("pipeline") or {}).get("execute", True):
        return "not executed (execution off)"
    if isolations:
        return ", ".join(sorted(isolations))
    return f"tier {(settings.get('sandbox') or {}).get('tier', 'standard')} (from settings)"


def _funnel(stages: list[str], ends: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Per stage: documents that reached it and documents that passed it.

    A kept document passed every stage; a rejected or failed one reached every stage up to
    the one it stopped at, and passed all before it. `intake` counts as `input`.
    """
    index = {stage: i for i, stage in enumerate(stages)}
    reached = [0] * len(stages)
    passed = [0] * len(stages)
    for status, stage, count in ends:
        if status == "kept":
            stop = len(stages)
        else:
            stop = index.get("input" if stage == "intake" else stage, len(stages) - 1)
        for i in range(len(stages)):
            if i <= min(stop, len(stages) - 1):
                reached[i] += count
            if i < stop:
                passed[i] += count
    return [
        {"stage": s, "reached": r, "passed": p}
        for s, r, p in zip(stages, reached, passed, strict=True)
    ]


def _first_line(text: str | None, limit: int = 90) -> str:
    """The first non-blank line of `text`, cut to `limit` characters with an ellipsis."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
