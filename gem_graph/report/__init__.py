"""`gem-graph report`: a run folder as one self-contained HTML page.

The page has an overview (metadata, funnel, reject reasons, cost, attempts,
distributions, grounded against refined) over the whole run, and a trajectory viewer
with at most `max_items` items sampled evenly over environments and reject reasons. It
works from `file://` with no network: styles, script and SVG charts are inline.

Modules: `load` (the only reads), `sampling`, `overview`, `distributions`, `charts`,
`items`, `statediff`, `draft`, `sources` (pure view-model building), `render` (Jinja2
templates under `templates/`), `build` (one run), `compare` (two runs), `synthetic`
(a synthetic run store for the benchmark and tests).
"""

from __future__ import annotations

from gem_graph.report.build import REPORT_FILE, ReportResult, build_report, write_report
from gem_graph.report.sampling import DEFAULT_MAX_ITEMS

__all__ = ["DEFAULT_MAX_ITEMS", "REPORT_FILE", "ReportResult", "build_report", "write_report"]
