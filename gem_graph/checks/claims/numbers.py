"""Numbers: supported as stated, or derived one step from supported values."""

from __future__ import annotations

import bisect
import re

from gem_graph.checks.evidence import Evidence

from .dates import _resolve
from .patterns import _APPROX_CUE, _BOUND_CUE, _Span


class _Pool:
    """The supported numbers (absolute values), sorted, for range look-ups."""

    def __init__(self, evidence: Evidence) -> None:
        values = {abs(v) for v in evidence.numbers} | {abs(v) for v in evidence.aggregates}
        self.values = sorted(values)
        self.counts = sorted(
            {v for v in values if v.is_integer() and 2 <= v <= 100} | {2.0, 3.0, 4.0}
        )
        self.percents = sorted({p for p in evidence.percents if 0 < p <= 100})

    def near(self, target: float, tolerance: float) -> bool:
        """True when a supported number lies within `tolerance` of `target`."""
        index = bisect.bisect_left(self.values, target - tolerance)
        return index < len(self.values) and self.values[index] <= target + tolerance


def _number_supported(text: str, span: _Span, evidence: Evidence) -> bool:
    """Supported directly or by one derivation; amounts must match to the cent, unless an
    "about" before them allows 5% or a bound ("at least") allows one cent."""
    if span.kind == "quantity" and _gap_supported(text, span, evidence):
        return True
    before = text[max(0, span.start - 30) : span.start]
    tolerance = 0.5 * 10 ** (-span.decimals) if span.kind == "percent" else 0.005
    if _APPROX_CUE.search(before):
        tolerance = max(tolerance, abs(span.number) * 0.05)
    targets = [abs(span.number)]
    if span.kind == "amount" and _BOUND_CUE.search(before):
        targets += [abs(span.number) + 0.01, abs(span.number) - 0.01]
    pool = _Pool(evidence)
    return any(_derivable(t, tolerance, pool, percent=span.kind == "percent") for t in targets)


def _derivable(target: float, tolerance: float, pool: _Pool, *, percent: bool = False) -> bool:
    """One step from supported values: equal, sum, difference, product with a count, ratio,
    percentage (see the module docstring)."""
    if pool.near(target, tolerance):
        return True
    for value in pool.values:
        if pool.near(target - value, tolerance) or pool.near(value - target, tolerance):
            return True
        if pool.near(target + value, tolerance):
            return True
        if percent and value and pool.near(target * value / 100, tolerance * value / 100):
            return True  # target is a percentage: part / value × 100
    for count in pool.counts:
        if pool.near(target / count, tolerance / count):
            return True  # value × count
        if pool.near(target * count, tolerance * count):
            return True  # value / count
    for rate in pool.percents:
        for factor in (rate / 100, 1 + rate / 100, 1 - rate / 100):
            if factor > 0 and pool.near(target / factor, tolerance / factor):
                return True
    return False


_MORE_MINUTES = re.compile(r"\s*[a-z]*\s*(?:,|and)?\s*(\d{1,2})\s*(?:minutes?|mins?)\b", re.I)
_HOURS_BEFORE = re.compile(r"(\d{1,3})\s*(?:hours?|hrs?|h)\s*(?:,|and)?\s*$", re.I)


def _gap_supported(text: str, span: _Span, evidence: Evidence) -> bool:
    """A number of days (weeks, hours, minutes) that is the gap between two supported dates
    (or times), today and now included: "due in 2 days", "23 days from now"."""
    units = ("day", "night", "week", "hour", "minute", "min", "hr")
    after = re.findall(r"[a-z]+", text[span.end : span.end + 30].casefold())[:2]
    word = next((w for w in after if w.startswith(units)), "")
    if word.startswith(("day", "night", "week")):
        days = span.number * (7 if word.startswith("week") else 1)
        today = evidence.now.date()
        dates = {today} | {
            found for key in evidence.dates if (found := _resolve(*key, evidence)) is not None
        }
        ordered = sorted(dates)[:200]
        return any(abs((a - b).days) == days for a in ordered for b in ordered)
    if word.startswith(("hour", "minute", "min", "hr")):
        minutes = span.number * (60 if word.startswith(("hour", "hr")) else 1)
        more = _MORE_MINUTES.match(text[span.end : span.end + 40])
        less = _HOURS_BEFORE.search(text[max(0, span.start - 30) : span.start])
        if word.startswith(("hour", "hr")) and more:
            minutes += int(more.group(1))  # "11 hours and 30 minutes"
        elif less:
            minutes += 60 * int(less.group(1))
        now = evidence.now.hour * 60 + evidence.now.minute
        times = sorted({now, *evidence.times})[:200]
        return any(abs(a - b) == minutes for a in times for b in times)
    return False


def _nearest_number(target: float, evidence: Evidence) -> str:
    """The supported number closest to `target`, with where it was seen."""
    options = {**evidence.aggregates, **evidence.numbers}
    if not options:
        return "no numbers at all"
    best = min(options, key=lambda v: (abs(abs(v) - abs(target)), v))
    return f"{_fmt(best)} ({options[best]})"


def _fmt(value: float) -> str:
    """A number as people write it: `45`, `12.5`."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
