"""A run folder's report: read the store, build the view model, render, write one file.

`build_report` returns the whole view model (JSON-able) for tests and other renderers;
`write_report` renders it and writes the HTML. The command line prints; this does not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gem_graph.report import distributions, overview
from gem_graph.report.items import record_item, reject_item
from gem_graph.report.load import RecordRow, RejectRow, RunReader
from gem_graph.report.render import render_page
from gem_graph.report.sampling import DEFAULT_MAX_ITEMS, Sample, sample_items
from gem_graph.report.sources import environment_view, source_view

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class ReportResult:
    """What `write_report` wrote."""

    path: Path
    bytes: int
    records: int
    rejects: int
    shown: int
    note: str


def _viewer(reader: RunReader, sample: Sample) -> dict[str, Any]:
    """The embedded items with the environments and source texts they refer to."""
    records = reader.records(r.id for r in sample.records)
    rejects = reader.rejects(r.doc_id for r in sample.rejects)
    shas = {
        str(env["sha256"])
        for record in records.values()
        if isinstance(env := record.get("environment"), Mapping) and env.get("sha256")
    }
    saved = reader.environments(shas)
    items: list[dict[str, Any]] = []
    spans: dict[str, Any] = {}
    envs: dict[str, Any] = {}
    for row in sample.records:
        record = records.get(row.id)
        if record is None:
            continue
        key = str((record.get("environment") or {}).get("sha256") or f"tools:{row.id}")
        env = saved.get(key)
        if key not in envs:
            envs[key] = environment_view(env, record.get("tools") or [])
        read_only = None if env is None or env.get("error") else env.get("read_only_tools")
        item = record_item(len(items), record, read_only)
        item["env_key"] = key
        items.append(item)
        spans.setdefault(row.doc_id, (record.get("provenance") or {}).get("spans"))
    for reject_row in sample.rejects:
        reject = rejects.get(reject_row.doc_id)
        if reject is not None:
            items.append(reject_item(len(items), reject, reject_row.status))
    texts = reader.texts({item["doc_id"] for item in items})
    sources = {doc: source_view(text, spans.get(doc)) for doc, text in texts.items()}
    return {"items": items, "envs": envs, "sources": sources, "sample": sample.as_dict()}


def build_report(run_dir: str | Path, *, max_items: int = DEFAULT_MAX_ITEMS) -> dict[str, Any]:
    """The report's whole view model: overview numbers over the whole run, and the viewer's
    items (at most `max_items`, sampled evenly). Raises `StoreError` for a non-run folder."""
    with RunReader(run_dir) as reader:
        summary = reader.summary()
        meta = reader.meta()
        record_rows: Sequence[RecordRow] = list(reader.record_rows())
        reject_rows: Sequence[RejectRow] = list(reader.reject_rows())
        sample = sample_items(record_rows, reject_rows, max_items)
        viewer = _viewer(reader, sample)
        attempt_rows = reader.attempt_rows()
    reject_index = {i["doc_id"]: i["index"] for i in viewer["items"] if i["kind"] != "kept"}
    caps = (meta.get("settings") or {}).get("attempts") or {}
    return {
        "title": f"gem-graph report: {Path(run_dir).resolve().name}",
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": summary,
        "meta": overview.run_meta(summary, meta),
        "funnel": overview.funnel(summary),
        "reasons": overview.reasons(reject_rows, reject_index),
        "cost": overview.cost(summary),
        "attempts": overview.attempts(attempt_rows, caps),
        "shape": distributions.shape(record_rows),
        "patterns": distributions.patterns(record_rows),
        "judge": distributions.judge(record_rows, reject_rows),
        "shift": distributions.shift(record_rows),
        "viewer": viewer,
    }


def render_report(model: Mapping[str, Any]) -> str:
    """The report page of a view model from `build_report`."""
    context = {key: value for key, value in model.items() if key != "viewer"}
    viewer = model["viewer"]
    filters = {
        "envs": sorted({i["env"] for i in viewer["items"] if i.get("env")}),
        "codes": sorted({i["code"] for i in viewer["items"] if i.get("code")}),
    }
    return render_page(
        "report.html.j2",
        {**context, "sample": viewer["sample"], "filters": filters},
        data=viewer,
    )


def write_report(
    run_dir: str | Path, out: str | Path | None = None, *, max_items: int = DEFAULT_MAX_ITEMS
) -> ReportResult:
    """Write the HTML report of `run_dir` to `out` (default `RUN_DIR/report.html`)."""
    model = build_report(run_dir, max_items=max_items)
    html = render_report(model)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = html.encode("utf-8")
    path.write_bytes(data)
    sample = model["viewer"]["sample"]
    return ReportResult(
        path=path,
        bytes=len(data),
        records=sample["total_records"],
        rejects=sample["total_rejects"],
        shown=len(model["viewer"]["items"]),
        note=sample["note"],
    )
