"""The overview page's numbers: run metadata, the funnel, reject reasons, cost, attempts.

Pure: built from the store's summary (the same dict `gem-graph stats --json` prints, so
the funnel matches it number for number), the run's meta values and light rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gem_graph.report.charts import bars, stacked
from gem_graph.report.load import AttemptRow, RejectRow
from gem_graph.run.summary import STAGE_ORDER

EXAMPLES_PER_REASON = 3


def _order(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _first_line(text: str, limit: int = 160) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_meta(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """What made the run: model, versions, settings fingerprint, isolation, wall time."""
    settings = meta.get("settings") or {}
    versions = summary.get("versions") or {}
    options = meta.get("options") or {}
    pipeline = settings.get("pipeline") or {}
    switches = ", ".join(
        f"{name} {'on' if pipeline.get(name, True) else 'off'}"
        for name in ("execute", "refine", "judge")
    )
    caps = settings.get("attempts") or {}
    rows = [
        ("run folder", summary.get("run_dir")),
        ("model", summary.get("model")),
        ("mode", pipeline.get("mode") or "pipeline"),
        ("gem-graph", versions.get("package")),
        ("settings fingerprint", meta.get("fingerprint")),
        ("sandbox isolation", summary.get("isolation")),
        ("sandbox tier", (settings.get("sandbox") or {}).get("tier")),
        ("pipeline", switches),
        ("attempt caps", ", ".join(f"{k} {v}" for k, v in caps.items())),
        (
            "wall time",
            f"{float(summary.get('wall_seconds') or 0):,.1f} s over "
            f"{summary.get('sessions', 0)} session(s)",
        ),
        ("command", " ".join(str(p) for p in options.get("command") or [])),
        ("stopped", summary.get("stopped_reason")),
    ]
    prompts = versions.get("prompts") or {}
    return {
        "rows": [{"label": k, "value": str(v)} for k, v in rows if v not in (None, "")],
        "prompts": [{"stage": s, "version": str(v)} for s, v in prompts.items()],
    }


def funnel(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Per stage: documents that reached it, passed it and were rejected there."""
    rows = []
    for row in summary.get("stages") or []:
        reached, passed = int(row["reached"]), int(row["passed"])
        rows.append(
            {
                "stage": row["stage"],
                "reached": reached,
                "passed": passed,
                "rejected": reached - passed,
                "rate": passed / reached if reached else None,
            }
        )
    return {
        "documents": dict(summary.get("documents") or {}),
        "records": summary.get("records", 0),
        "environments": summary.get("environments", 0),
        "rows": rows,
        "chart": stacked(
            [(r["stage"], [r["passed"], r["rejected"]]) for r in rows], ["passed", "rejected"]
        ),
    }


def reasons(rejects: Sequence[RejectRow], index_of: Mapping[str, int]) -> dict[str, Any]:
    """Rejects by stage and code, most common first, each with a few linked examples.

    `index_of` maps the doc ids the viewer embeds to their item index; examples are taken
    from those, so every link opens a trajectory the report holds.
    """
    groups: dict[tuple[str, str], list[RejectRow]] = defaultdict(list)
    for reject in rejects:
        groups[(reject.stage, reject.code)].append(reject)
    total = len(rejects)
    rows: list[dict[str, Any]] = []
    for (stage, code), members in sorted(
        groups.items(), key=lambda kv: (-len(kv[1]), _order(kv[0][0]), kv[0][1])
    ):
        shown = [r for r in members if r.doc_id in index_of][:EXAMPLES_PER_REASON]
        rows.append(
            {
                "stage": stage,
                "code": code,
                "count": len(members),
                "share": len(members) / total if total else None,
                "failed": sum(r.status == "failed" for r in members),
                "example": _first_line(members[0].reason),
                "examples": [
                    {
                        "doc_id": r.doc_id,
                        "index": index_of[r.doc_id],
                        "reason": _first_line(r.reason),
                    }
                    for r in shown
                ],
            }
        )
    return {
        "total": total,
        "rows": rows,
        "chart": bars([(f"{r['stage']} · {r['code']}", [r["count"]]) for r in rows]),
    }


def cost(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Model calls, tokens and seconds per stage, in total and per kept trajectory."""
    kept = int(summary.get("records") or 0)

    def per(value: float) -> float | None:
        return value / kept if kept else None

    usage = summary.get("usage") or {}
    rows = []
    for stage, row in usage.items():
        tokens = row["input_tokens"] + row["output_tokens"]
        rows.append(
            {
                "stage": stage,
                "calls": row["calls"],
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "seconds": row["seconds"],
                "per_kept": {
                    "calls": per(row["calls"]),
                    "input_tokens": per(row["input_tokens"]),
                    "output_tokens": per(row["output_tokens"]),
                    "tokens": per(tokens),
                    "seconds": per(row["seconds"]),
                },
            }
        )
    stages = [r for r in rows if r["stage"] != "total"]
    return {
        "kept": kept,
        "rows": rows,
        "chart": bars(
            [(r["stage"], [r["per_kept"]["tokens"]]) for r in stages if r["per_kept"]["tokens"]]
        ),
    }


ATTEMPT_PARTS = ("first try", "repaired", "rejected", "failed")


def attempts(rows: Sequence[AttemptRow], caps: Mapping[str, Any]) -> dict[str, Any]:
    """Per stage: documents passed on the first draft, repaired by the loop, rejected
    there, or failed there (the model endpoint).

    A stage's model calls for a document are its attempts (transport retries are not
    counted as calls); `repaired` passed after more than one.
    """
    by_stage: dict[str, Counter[str]] = defaultdict(Counter)
    calls_hist: dict[str, Counter[int]] = defaultdict(Counter)
    for row in rows:
        part = {
            "passed": "first try" if row.calls <= 1 else "repaired",
            "stopped": "rejected",
            "failed": "failed",
        }[row.outcome]
        by_stage[row.stage][part] += row.documents
        calls_hist[row.stage][row.calls] += row.documents
    out: list[dict[str, Any]] = []
    for stage in sorted(by_stage, key=_order):
        parts = by_stage[stage]
        documents = sum(parts.values())
        calls = calls_hist[stage]
        out.append(
            {
                "stage": stage,
                "cap": caps.get(stage),
                "documents": documents,
                **{part.replace(" ", "_"): parts[part] for part in ATTEMPT_PARTS},
                "mean": sum(c * n for c, n in calls.items()) / documents if documents else None,
                "calls": [{"calls": c, "documents": n} for c, n in sorted(calls.items())],
            }
        )
    return {
        "rows": out,
        "chart": stacked(
            [(r["stage"], [r[p.replace(" ", "_")] for p in ATTEMPT_PARTS]) for r in out],
            ATTEMPT_PARTS,
        ),
    }
