"""`gem-graph compare --html`: two runs side by side as one self-contained page.

The numbers are `gem_graph.compare`'s (the same rows the terminal table prints); this
module lays them out with charts of the funnel pass rates, the trajectory shapes and
the cost per kept trajectory, and renders them with the report's templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gem_graph.compare import ALL_STAGES, Comparison, compare_runs, format_value, load_run_summary
from gem_graph.report.charts import bars
from gem_graph.report.render import render_page


def _pair(summary_a: Mapping[str, Any], summary_b: Mapping[str, Any], *path: str) -> list[Any]:
    values = []
    for summary in (summary_a, summary_b):
        value: Any = summary
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        values.append(value)
    return values


def compare_model(
    summary_a: Mapping[str, Any], summary_b: Mapping[str, Any], comparison: Comparison
) -> dict[str, Any]:
    """The comparison page's view model from two `summarize_run` results and their rows."""
    names = list(comparison.names)
    present = {*summary_a["stages"], *summary_b["stages"]}
    stages = [s for s in ALL_STAGES if s in present] + sorted(present - set(ALL_STAGES))
    rates = [(s, _pair(summary_a, summary_b, "funnel", s, "rate")) for s in stages]
    shape = [
        (key.replace("_", " "), _pair(summary_a, summary_b, "shape", key, "mean"))
        for key in ("messages", "distinct_tools", "tool_calls")
    ]
    cost = [
        (label, _pair(summary_a, summary_b, "per_kept", key))
        for key, label in (
            ("calls", "model calls"),
            ("model_seconds", "model seconds"),
            ("wall_seconds", "wall seconds"),
        )
    ]

    def percent_chart(rows: list[tuple[str, list[Any]]]) -> dict[str, Any]:
        scaled = [
            (label, [None if v is None else 100 * v for v in values]) for label, values in rows
        ]
        texts = [[format_value(v, "percent") for v in values] for _, values in rows]
        return bars(scaled, names, texts=texts, max_value=100)

    different = summary_a["documents"] != summary_b["documents"]
    return {
        "title": f"gem-graph comparison: {summary_a.get('name')} vs {summary_b.get('name')}",
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "names": names,
        "rows": [
            {
                "label": row.label,
                "a": format_value(row.a, row.kind),
                "b": format_value(row.b, row.kind),
                "ratio": row.ratio_text,
            }
            for row in comparison.rows
        ],
        "panels": [
            {"title": "Pass rate per stage", "chart": percent_chart(rates)},
            {"title": "Trajectory shape (means)", "chart": bars(shape, names)},
            {"title": "Cost per kept trajectory", "chart": bars(cost, names)},
            {
                "title": "Tokens per kept trajectory",
                "chart": bars(
                    [("tokens", _pair(summary_a, summary_b, "per_kept", "tokens"))], names
                ),
            },
        ],
        "note": (
            f"The runs finished different numbers of documents ({summary_a['documents']} vs "
            f"{summary_b['documents']}); compare runs over the same texts."
            if different
            else ""
        ),
    }


def default_compare_path(run_a: Path, run_b: Path) -> Path:
    """`compare_<A>_vs_<B>.html` in the current folder."""
    return Path(f"compare_{Path(run_a).resolve().name}_vs_{Path(run_b).resolve().name}.html")


def write_compare_report(
    run_a: Path,
    run_b: Path,
    out: Path | None = None,
    *,
    summaries: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> Path:
    """Write the comparison page of two run folders; returns its path.

    `summaries` are the runs' `load_run_summary` results when the caller has them already.
    Raises `StoreError` when a folder is not a run folder.
    """
    summary_a, summary_b = summaries or (
        load_run_summary(Path(run_a)),
        load_run_summary(Path(run_b)),
    )
    model = compare_model(summary_a, summary_b, compare_runs(summary_a, summary_b))
    path = Path(out) if out is not None else default_compare_path(run_a, run_b)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_page("compare.html.j2", model), encoding="utf-8")
    return path
