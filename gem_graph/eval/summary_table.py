"""The summary table of an eval run, printed with rich.

Task ids, environment names and reasons come from untrusted task files: they are printed
as plain text, never as rich markup (a `[/bold]` in an id would crash, a link could fake
output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_summary(summary: dict[str, Any], out_dir: Path | str) -> None:
    """pass^k overall and per environment, failure reasons, bad tasks, failed episodes."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    ks = list(summary["pass_hat"])
    table = Table(title="gem-graph eval")
    table.add_column("environment")
    table.add_column("tasks", justify="right")
    table.add_column("episodes", justify="right")
    for k in ks:
        table.add_column(f"pass^{k}", justify="right")
    table.add_column("reasons (scored episodes)")
    rows = [*summary["environments"].items(), ("all", summary)]
    for name, block in rows:
        reasons = ", ".join(f"{r} {n}" for r, n in block["reasons"].items())
        cells = [_pct(block["pass_hat"].get(k)) for k in ks]
        table.add_row(Text(name), str(block["tasks"]), str(block["scored"]), *cells, Text(reasons))
    console.print(table)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    counted = summary.get("complete_tasks")
    if counted is not None and counted != summary["tasks"]:
        say(f"pass^k over the {counted} task(s) with every trial scored")
    for task_id, code, detail in summary["bad_tasks"]:
        say(f"bad task {task_id}: {code}: {detail}")
    if summary["failed"]:
        say(f"{summary['failed']} episode(s) failed (infrastructure); re-run to retry")
    say(f"results: {Path(out_dir) / 'eval.sqlite'}")


def write_summary(summary: dict[str, Any], out_dir: Path | str) -> Path:
    """`EVAL_DIR/summary.json`: the numbers of the table, for scripts."""
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=list) + "\n", encoding="utf-8")
    return path
