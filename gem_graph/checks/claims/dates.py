"""Dates and times: resolved by the scenario clock and checked against the evidence."""

from __future__ import annotations

from datetime import date

from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence

from .patterns import _Span, _ungrounded


def _date_problem(span: _Span, evidence: Evidence) -> str | None:
    """None when one reading of the date is supported (see `Evidence.find_date`, plus
    yesterday to tomorrow) and its written weekday, if any, fits; else the message."""
    assert span.date_span is not None
    today = evidence.now.date()
    supported = False
    for year, month, day in span.date_span.candidates:
        if evidence.find_date(year, month, day) is not None:
            supported = True
        else:
            actual = _resolve(year, month, day, evidence)
            supported = actual is not None and abs((actual - today).days) <= 1
        if supported:
            weekday = span.date_span.weekday
            actual = _resolve(year, month, day, evidence)
            if weekday is not None and actual is not None and actual.weekday() != weekday:
                return (
                    f"the assistant writes {span.text!r}, but {actual.isoformat()} is a "
                    f"{spans.WEEKDAYS[actual.weekday()].title()}, not a "
                    f"{spans.WEEKDAYS[weekday].title()}"
                )
            return None
    return _ungrounded(span, _nearest_date(span.date_span.candidates[0], evidence))


def _resolve(year: int | None, month: int, day: int, evidence: Evidence) -> date | None:
    """The full date meant: the written year, a full date in the evidence with this month
    and day, or the occurrence nearest to the scenario clock."""
    if year is None:
        years = sorted(y for (y, m, d) in evidence.dates if (m, d) == (month, day) and y)
        year = years[-1] if years else evidence.nearest_year(month, day)
    if year is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest_date(key: tuple[int | None, int, int], evidence: Evidence) -> str:
    """The supported full date (or today) closest to the written one."""
    target = _resolve(*key, evidence) or evidence.now.date()
    options: dict[date, str] = {evidence.now.date(): "today by the scenario clock"}
    for (y, m, d), where in evidence.dates.items():
        if y is not None:
            options.setdefault(date(y, m, d), where)
    best = min(options, key=lambda d: abs((d - target).days))
    return f"{best.isoformat()} ({options[best]})"


def _nearest_time(minutes: int, evidence: Evidence) -> str:
    """The supported time of day closest to `minutes`."""
    if not evidence.times:
        return "no times of day at all"
    best = min(evidence.times, key=lambda t: abs(t - minutes))
    return f"{best // 60:02d}:{best % 60:02d} ({evidence.times[best]})"
