"""Compare two runs over the same texts (e.g. pipeline vs synthesizer mode), side by side.

`summarize_run` and `compare_runs` are pure: they work on the lists a run store holds
(records, rejects, usage rows). `load_run_summary` reads one run folder; `gem-graph compare`
prints the table.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gem_graph.checks.stats import trajectory_stats
from gem_graph.pipeline import LLM_STAGES, STAGES, Mode, active_stages, mode_stages

PIPELINE_STAGES = ("intake", *mode_stages("pipeline"))
ALL_STAGES = ("intake", *LLM_STAGES)
SYNTHESIZER_STAGES = ("intake", *mode_stages("synthesizer"))
TRAJECTORY_STAGES = frozenset(spec.name for spec in STAGES if spec.replays)
"""Stages whose check replays the dialogue: their rejects are failed verifications."""
RUBRICS = ("R1", "R2", "R3")
_SHAPE = ("messages", "distinct_tools", "tool_calls")
_NOT_CHECKED = frozenset({"transport", "internal_error"})


def _mean_median(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None}
    return {"mean": statistics.mean(values), "median": float(statistics.median(values))}


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def run_mode(records: Iterable[Mapping[str, Any]], rejects: Iterable[Mapping[str, Any]]) -> Mode:
    """`synthesizer` when any record or reject came from synthesizer mode, else `pipeline`."""
    for record in records:
        if (record.get("provenance") or {}).get("mode") == "synthesizer":
            return "synthesizer"
    if any(reject.get("stage") == "synthesizer" for reject in rejects):
        return "synthesizer"
    return "pipeline"


def _funnel(
    stages: Sequence[str], rejected_at: Mapping[str, int], documents: int
) -> dict[str, dict[str, float | None]]:
    """Per stage: documents that reached it, passed it, and the pass rate."""
    out: dict[str, dict[str, float | None]] = {}
    reached = documents
    for stage in stages:
        passed = reached - rejected_at.get(stage, 0)
        out[stage] = {"reached": reached, "passed": passed, "rate": _ratio(passed, reached)}
        reached = passed
    return out


def _judge_rates(
    records: Sequence[Mapping[str, Any]], rejects: Sequence[Mapping[str, Any]]
) -> dict[str, float | None]:
    """Pass rate per rubric over every judged trajectory (kept, or rejected by the judge)."""
    outcomes: dict[str, list[bool]] = {label: [] for label in RUBRICS}
    for record in records:
        rubrics = (record.get("judge") or {}).get("rubrics") or {}
        for label in RUBRICS:
            if label in rubrics:
                outcomes[label].append(bool(rubrics[label].get("passed")))
    for reject in rejects:
        if reject.get("stage") != "judge" or reject.get("code") != "judge_failed":
            continue
        failed = {p.get("where") for p in reject.get("problems") or []}
        for label in RUBRICS:
            outcomes[label].append(label not in failed)
    return {label: _ratio(sum(v), len(v)) for label, v in outcomes.items()}


def summarize_run(
    *,
    records: Sequence[Mapping[str, Any]],
    rejects: Sequence[Mapping[str, Any]],
    usage: Sequence[Mapping[str, Any]],
    documents: int | None = None,
    wall_seconds: float | None = None,
    stages: Sequence[str] | None = None,
    name: str = "",
) -> dict[str, Any]:
    """Every number the comparison shows, for one run.

    `usage` rows are `{"stage", "calls", "input_tokens", "output_tokens", "seconds"}` (per
    document and stage, as the run store keeps them). `documents` defaults to kept plus
    rejected documents; `stages` to the stages of the run's mode.
    """
    mode = run_mode(records, rejects)
    stages = list(stages or (SYNTHESIZER_STAGES if mode == "synthesizer" else PIPELINE_STAGES))
    kept_docs = len({str((r.get("source") or {}).get("doc_id")) for r in records})
    total_docs = documents if documents is not None else kept_docs + len(rejects)
    rejected_at: dict[str, int] = {}
    for reject in rejects:
        stage = str(reject.get("stage"))
        stage = "intake" if stage == "input" else stage
        rejected_at[stage] = rejected_at.get(stage, 0) + 1
    # Documents whose dialogue was checked: all but those stopped before, or by transport.
    failed_checks = sum(
        1
        for r in rejects
        if r.get("stage") in TRAJECTORY_STAGES and r.get("code") not in _NOT_CHECKED
    )
    checked = total_docs - sum(
        1
        for r in rejects
        if r.get("stage") not in TRAJECTORY_STAGES | {"judge"} or r.get("code") in _NOT_CHECKED
    )
    first_try = sum(
        1
        for r in records
        if all(
            ((r.get("usage") or {}).get(s) or {}).get("calls", 1) <= 1
            for s in TRAJECTORY_STAGES
            if s in (r.get("usage") or {})
        )
    )
    shapes: list[Mapping[str, Any]] = [trajectory_stats(r.get("messages")) for r in records]
    totals = {
        key: sum(float(row.get(key) or 0) for row in usage)
        for key in ("calls", "input_tokens", "output_tokens", "seconds")
    }
    kept = len(records)
    per_kept = {
        "calls": _ratio(totals["calls"], kept),
        "input_tokens": _ratio(totals["input_tokens"], kept),
        "output_tokens": _ratio(totals["output_tokens"], kept),
        "tokens": _ratio(totals["input_tokens"] + totals["output_tokens"], kept),
        "model_seconds": _ratio(totals["seconds"], kept),
        "wall_seconds": _ratio(wall_seconds, kept) if wall_seconds is not None else None,
    }
    return {
        "name": name,
        "mode": mode,
        "stages": stages,
        "documents": total_docs,
        "kept_documents": kept_docs,
        "records": kept,
        "yield": _ratio(kept_docs, total_docs),
        "funnel": _funnel(stages, rejected_at, total_docs),
        "verification_pass_rate": _ratio(checked - failed_checks, checked),
        "first_try_rate": _ratio(first_try, kept),
        "shape": {key: _mean_median([s[key] for s in shapes]) for key in _SHAPE},
        "judge": _judge_rates(records, rejects),
        "totals": totals,
        "per_kept": per_kept,
    }


@dataclass(frozen=True)
class Row:
    """One line of the comparison: a label, the two values, how to show them."""

    label: str
    a: float | None
    b: float | None
    kind: str = "number"
    """`number`, `percent` or `count`; decides the formatting."""

    @property
    def ratio(self) -> float | None:
        """b / a, when both are known and a is not zero."""
        if self.a is None or self.b is None or self.a == 0:
            return None
        return self.b / self.a

    @property
    def ratio_text(self) -> str:
        """The ratio as the table shows it (`-` for percentages and unknowns)."""
        ratio = self.ratio
        return "-" if ratio is None or self.kind == "percent" else f"{ratio:.2f}×"


@dataclass(frozen=True)
class Comparison:
    names: tuple[str, str]
    rows: list[Row]

    def row(self, label: str) -> Row:
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)

    def table(self) -> Any:
        """A rich `Table` with one column per run and their ratio."""
        from rich.table import Table

        table = Table(title="Run comparison")
        table.add_column("measure")
        table.add_column(self.names[0], justify="right")
        table.add_column(self.names[1], justify="right")
        table.add_column("B / A", justify="right")
        for row in self.rows:
            table.add_row(
                row.label,
                format_value(row.a, row.kind),
                format_value(row.b, row.kind),
                row.ratio_text,
            )
        return table


def format_value(value: float | None, kind: str) -> str:
    """A comparison value as text, by its kind (`number`, `percent` or `count`)."""
    if value is None:
        return "-"
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def compare_runs(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any]) -> Comparison:
    """Side-by-side rows for two `summarize_run` results."""

    def both(path: Sequence[str], label: str, kind: str = "number") -> Row:
        values = []
        for summary in (summary_a, summary_b):
            value: Any = summary
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            values.append(value)
        return Row(label, values[0], values[1], kind)

    rows = [
        both(("documents",), "documents", "count"),
        both(("records",), "kept trajectories", "count"),
        both(("yield",), "yield (kept / documents)", "percent"),
    ]
    present = {*summary_a["stages"], *summary_b["stages"]}
    stages = [s for s in ALL_STAGES if s in present] + sorted(present - set(ALL_STAGES))
    for stage in stages:
        rows.append(both(("funnel", stage, "rate"), f"passed {stage}", "percent"))
    rows += [
        both(("verification_pass_rate",), "verification pass rate", "percent"),
        both(("first_try_rate",), "kept on first draft", "percent"),
    ]
    for key in _SHAPE:
        name = key.replace("_", " ")
        rows.append(both(("shape", key, "mean"), f"{name} per trajectory (mean)"))
        rows.append(both(("shape", key, "median"), f"{name} per trajectory (median)"))
    for label in RUBRICS:
        rows.append(both(("judge", label), f"judge {label} pass rate", "percent"))
    rows += [
        both(("per_kept", "calls"), "model calls per kept"),
        both(("per_kept", "tokens"), "tokens per kept"),
        both(("per_kept", "output_tokens"), "output tokens per kept"),
        both(("per_kept", "model_seconds"), "model seconds per kept"),
        both(("per_kept", "wall_seconds"), "wall seconds per kept"),
    ]
    names = (
        f"A: {summary_a.get('name') or 'run A'} ({summary_a['mode']})",
        f"B: {summary_b.get('name') or 'run B'} ({summary_b['mode']})",
    )
    return Comparison(names=names, rows=rows)


def load_run_summary(run_dir: Path) -> dict[str, Any]:
    """Read a run folder's store and summarize it (the only I/O of this module)."""
    from gem_graph.run.store import RunStore

    with RunStore(run_dir) as store:
        records = list(store.iter_records())
        rejects = list(store.iter_rejects())
        usage = list(store.db["usage"].rows)
        documents = sum(1 for d in store.iter_documents() if d["status"] in ("kept", "rejected"))
        wall = store.summary()["wall_seconds"]
        settings = store.get_meta("settings") or {}
    mode = run_mode(records, rejects)
    stages = ["intake", *active_stages(settings.get("pipeline"), mode=mode)]
    return summarize_run(
        records=records,
        rejects=rejects,
        usage=usage,
        documents=documents,
        wall_seconds=wall,
        stages=stages,
        name=run_dir.name,
    )
