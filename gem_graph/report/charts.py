"""Chart geometry for inline SVG: numbers in, boxes and labels out.

The report draws its charts as SVG that the templates write from these dicts (see
`templates/charts.html.j2`), so a chart needs no script, no library and no network, and
every label passes through the templates' autoescaping. Three kinds cover the report:
horizontal grouped bars (one or more series per row), horizontal stacked bars (parts of
a whole per row) and a histogram of integer values. Pure and JSON-able.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WIDTH = 560
ROW = 22
LABEL_W = 170
VALUE_W = 64
PAD = 4


def _fmt(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def bars(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str] = ("",),
    *,
    texts: Sequence[Sequence[str]] | None = None,
    max_value: float | None = None,
) -> dict[str, Any]:
    """Horizontal bars: one row per label, one bar per series in it (None: no bar).

    `texts` overrides the number written after each bar (e.g. a percentage).
    """
    n = max(len(series), 1)
    bar_h = 13 if n > 1 else ROW - PAD
    row_h = bar_h * n + PAD * 2
    top = max((v or 0.0) for _, values in rows for v in values) if rows else 0.0
    scale_max = max_value if max_value else top
    span = WIDTH - LABEL_W - VALUE_W
    out_rows = []
    for r, (label, values) in enumerate(rows):
        y0 = r * row_h + PAD
        out_bars = []
        for s, value in enumerate(values):
            if value is None:
                continue
            w = span * value / scale_max if scale_max else 0.0
            y = y0 + s * bar_h
            text = texts[r][s] if texts else _fmt(value)
            name = series[s] if s < len(series) else ""
            out_bars.append(
                {
                    "x": LABEL_W,
                    "y": y,
                    "w": round(max(w, 0.0), 2),
                    "h": bar_h - 1,
                    "cls": f"s{s}",
                    "text": text,
                    "tx": round(LABEL_W + max(w, 0.0) + 4, 2),
                    "ty": y + bar_h / 2,
                    "title": f"{label}{' · ' + name if name else ''}: {text}",
                }
            )
        out_rows.append({"label": label, "ly": y0 + bar_h * n / 2, "bars": out_bars})
    return {
        "kind": "bars",
        "width": WIDTH,
        "height": len(rows) * row_h + PAD,
        "label_w": LABEL_W,
        "rows": out_rows,
        "legend": [{"name": s, "cls": f"s{i}"} for i, s in enumerate(series) if s],
    }


def stacked(rows: Sequence[tuple[str, Sequence[float]]], parts: Sequence[str]) -> dict[str, Any]:
    """Horizontal stacked bars: each row's parts side by side, scaled to the largest row."""
    top = max((sum(values) for _, values in rows), default=0.0)
    span = WIDTH - LABEL_W - VALUE_W
    out_rows = []
    for r, (label, values) in enumerate(rows):
        y = r * ROW + PAD
        x = float(LABEL_W)
        pieces = []
        for p, value in enumerate(values):
            w = span * value / top if top else 0.0
            if value:
                name = parts[p] if p < len(parts) else ""
                pieces.append(
                    {
                        "x": round(x, 2),
                        "y": y,
                        "w": round(w, 2),
                        "h": ROW - PAD - 1,
                        "cls": f"s{p}",
                        "title": f"{label} · {name}: {_fmt(value)}",
                    }
                )
            x += w
        out_rows.append(
            {
                "label": label,
                "ly": y + (ROW - PAD) / 2,
                "pieces": pieces,
                "text": _fmt(sum(values)),
                "tx": round(x + 4, 2),
            }
        )
    return {
        "kind": "stacked",
        "width": WIDTH,
        "height": len(rows) * ROW + PAD,
        "label_w": LABEL_W,
        "rows": out_rows,
        "legend": [{"name": p, "cls": f"s{i}"} for i, p in enumerate(parts)],
    }


def binned(counts: Mapping[int, int], max_bins: int = 24) -> list[tuple[str, int]]:
    """Integer values grouped into at most `max_bins` equal-width bins, labelled by range."""
    if not counts:
        return []
    low, high = min(counts), max(counts)
    width = max(-(-(high - low + 1) // max_bins), 1)
    out = []
    for start in range(low, high + 1, width):
        end = start + width - 1
        total = sum(n for value, n in counts.items() if start <= value <= end)
        out.append((str(start) if width == 1 else f"{start}–{end}", total))
    return out


def histogram(counts: Mapping[int, int], *, unit: str = "", max_bins: int = 24) -> dict[str, Any]:
    """Vertical bars over integer values: how many items have each value (or value range)."""
    bins = binned(counts, max_bins)
    width, height, base, left = 360, 150, 126, 30
    top = max((n for _, n in bins), default=0)
    step = (width - left) / max(len(bins), 1)
    out = []
    for i, (label, n) in enumerate(bins):
        h = (base - 14) * n / top if top else 0.0
        x = left + i * step
        out.append(
            {
                "x": round(x + 1, 2),
                "y": round(base - h, 2),
                "w": round(max(step - 2, 1.0), 2),
                "h": round(h, 2),
                "label": label,
                "lx": round(x + step / 2, 2),
                "title": f"{label}{' ' + unit if unit else ''}: {n:,}",
                "show_label": len(bins) <= 12 or i % max(len(bins) // 8, 1) == 0,
            }
        )
    return {
        "kind": "histogram",
        "width": width,
        "height": height,
        "base": base,
        "left": left,
        "top": _fmt(top),
        "bins": out,
    }
