"""What a run shows a person: the live progress bar and the end-of-run summary table."""

from __future__ import annotations

import io
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text


@dataclass
class RunCounters:
    """Live counts of one run session, updated by the runner after every document."""

    total: float | None = None
    """Input documents expected (None when unknown)."""
    done: float = 0.0
    """Input documents finished, fractional while a split document is part-way done."""
    kept: int = 0
    records: int = 0
    failed: int = 0
    skipped: int = 0
    processed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    prior_seconds_per_doc: float | None = None
    """From earlier sessions of a resumed run: the ETA until this session has its own rate."""

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate of documents processed this session (before the first,
        at an earlier session's rate)."""
        if not self.total:
            return None
        left = max(self.total - self.done, 0.0)
        if self.processed == 0:
            prior = self.prior_seconds_per_doc
            return prior * left if prior else None
        elapsed = time.monotonic() - self.started
        work_done = max(self.done - self.skipped, 1e-9)
        return elapsed / work_done * left


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _bar(fraction: float, width: int = 28) -> str:
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "━" * filled + "╺" + " " * (width - filled) if filled < width else "━" * width


def render_progress(counters: RunCounters) -> RenderableType:
    """One or two lines: bar, done/total, kept, rejected by stage, failed, tokens, ETA."""
    done = counters.done
    total = counters.total
    head = Text()
    if total:
        head.append(_bar(done / total), style="magenta")
        head.append(f" {done:,.0f}/{total:,.0f} docs")
    else:
        head.append(f"{done:,.0f} docs")
    head.append("  kept ", style="dim")
    head.append(f"{counters.kept:,}", style="green")
    head.append("  rejected ", style="dim")
    head.append(f"{counters.rejected_total:,}", style="yellow")
    if counters.failed:
        head.append("  failed ", style="dim")
        head.append(f"{counters.failed:,}", style="red")
    tokens = counters.input_tokens + counters.output_tokens
    head.append(f"  tokens {tokens:,}", style="dim")
    head.append(f"  elapsed {_duration(time.monotonic() - counters.started)}", style="dim")
    head.append(f"  ETA {_duration(counters.eta_seconds())}", style="cyan")
    if not counters.rejected:
        return head
    by_stage = "  ".join(f"{stage} {n:,}" for stage, n in counters.rejected.most_common())
    return Group(head, Text(f"  rejected by stage: {by_stage}", style="dim"))


class ProgressDisplay:
    """A live progress display on a terminal; does nothing when disabled or not a TTY."""

    def __init__(self, counters: RunCounters, *, enabled: bool = True, file: TextIO | None = None):
        stream = file or sys.stderr
        self.counters = counters
        self.enabled = enabled and stream.isatty()
        self._live: Live | None = None
        if self.enabled:
            console = Console(file=stream)
            self._live = Live(
                render_progress(counters),
                console=console,
                refresh_per_second=4,
                transient=False,
                get_renderable=lambda: render_progress(self.counters),
            )

    def __enter__(self) -> ProgressDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def update(self) -> None:
        """Called after each document; the live display also refreshes on its own clock."""

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


# ---- summary ---------------------------------------------------------------------------------


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def render_summary(summary: dict[str, Any]) -> RenderableType:
    """The end-of-run summary of a `RunStore.summary()` dict, as a rich renderable.

    Yield per stage, top reject reasons, calls and tokens per kept trajectory, wall time
    and the sandbox isolation level.
    """
    docs = summary.get("documents", {})
    parts: list[RenderableType] = []
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("run", str(summary.get("run_dir", "")))
    if summary.get("model"):
        head.add_row("model", str(summary["model"]))
    if summary.get("server"):
        head.add_row("server", str(summary["server"]))
    head.add_row(
        "documents",
        f"{_num(docs.get('total'))} (kept {_num(docs.get('kept'))}, rejected "
        f"{_num(docs.get('rejected'))}, failed {_num(docs.get('failed'))})",
    )
    head.add_row(
        "records",
        f"{_num(summary.get('records'))} trajectories, "
        f"{_num(summary.get('environments'))} environments saved",
    )
    head.add_row(
        "wall time",
        f"{summary.get('wall_seconds', 0):.1f} s over {summary.get('sessions', 0)} session(s)",
    )
    head.add_row("sandbox", str(summary.get("isolation", "?")))
    if summary.get("stopped_reason"):
        head.add_row("stopped", Text(str(summary["stopped_reason"]), style="red"))
    parts.append(head)

    stages = Table(title="Yield per stage", title_justify="left", show_edge=False)
    for name, justify in (
        ("stage", "left"),
        ("reached", "right"),
        ("passed", "right"),
        ("pass rate", "right"),
    ):
        stages.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in summary.get("stages", []):
        stages.add_row(
            row["stage"],
            _num(row["reached"]),
            _num(row["passed"]),
            _pct(row["passed"], row["reached"]),
        )
    parts.append(stages)

    top = summary.get("top_rejects") or []
    if top:
        rejects = Table(title="Top reject reasons", title_justify="left", show_edge=False)
        for name in ("count", "stage", "code", "example"):
            rejects.add_column(name, justify="right" if name == "count" else "left")
        for row in top:
            rejects.add_row(
                _num(row["count"]), row["stage"] or "", row["code"] or "", row.get("example") or ""
            )
        parts.append(rejects)

    usage = summary.get("usage") or {}
    cost = Table(title="Model usage", title_justify="left", show_edge=False)
    for name in ("stage", "calls", "input tokens", "output tokens", "model seconds"):
        cost.add_column(name, justify="left" if name == "stage" else "right")
    for stage, row in usage.items():
        if stage != "total":
            cost.add_row(
                stage,
                _num(row["calls"]),
                _num(row["input_tokens"]),
                _num(row["output_tokens"]),
                f"{row['seconds']:.1f}",
            )
    total = usage.get("total") or {}
    if total:
        cost.add_row(
            "total",
            _num(total.get("calls")),
            _num(total.get("input_tokens")),
            _num(total.get("output_tokens")),
            f"{total.get('seconds', 0):.1f}",
            style="bold",
        )
    per = summary.get("per_kept") or {}
    cost.add_row(
        "per kept trajectory",
        _num(per.get("calls")),
        _num(per.get("input_tokens")),
        _num(per.get("output_tokens")),
        "",
        style="italic",
    )
    parts.append(cost)
    return Group(*parts)


def summary_text(summary: dict[str, Any], *, width: int = 110) -> str:
    """The summary as plain text (no colour), e.g. for logs and tests."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(render_summary(summary))
    return console.export_text()
