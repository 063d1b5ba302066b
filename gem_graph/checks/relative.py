"""Relative dates in user turns ("tomorrow", "next Friday", "in 3 days", "end of the month")
resolved against the scenario clock: what a user's words can mean as calendar dates.

Public API:
- `relative_dates(text, today) -> set[date]`: every date the text's relative phrases can
  mean (a weekday or "next week" gives several).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from gem_graph.checks.spans import NUMBER_WORDS, WEEKDAYS, _count

_RELATIVE = re.compile(
    r"\b(?:(?P<day>today|tonight|this (?:morning|afternoon|evening)|now|"
    r"(?:the )?day after tomorrow|(?:the )?day before yesterday|tomorrow|yesterday)"
    r"|(?:(?P<which>next|this|coming|last|past|on)\s+)?(?P<weekday>" + "|".join(WEEKDAYS) + r")"
    r"|in (?P<n>\d+|" + "|".join(NUMBER_WORDS) + r"|a|an) (?P<unit>days?|weeks?|months?)"
    r"|(?P<n2>\d+|"
    + "|".join(NUMBER_WORDS)
    + r"|a|an) (?P<unit2>days?|weeks?|months?) (?P<dir>from now|from today|later|ago)"
    r"|(?P<span>next week|this week|(?:this |the )?weekend|next weekend|next month|"
    r"(?:later )?this month|end of (?:the |this )?(?:week|month)|end of next (?:week|month)))\b",
    re.IGNORECASE,
)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _days(start: date, count: int) -> set[date]:
    return {start + timedelta(days=i) for i in range(count)}


def relative_dates(text: str, today: date) -> set[date]:
    """The dates the relative expressions of `text` can mean, seen from `today`."""
    found: set[date] = set()
    for match in _RELATIVE.finditer(text):
        try:
            found |= _resolve_relative(match, today)
        except (OverflowError, ValueError):  # a clock near the end of the calendar
            continue
    return found


def _resolve_relative(match: re.Match[str], today: date) -> set[date]:
    """The dates one relative expression can mean."""
    found: set[date] = set()
    groups = {k: (v.lower() if v else v) for k, v in match.groupdict().items()}
    if groups["day"]:
        found |= _relative_day(groups["day"], today)
    elif groups["weekday"]:
        found |= _relative_weekday(groups["weekday"], groups["which"], today)
    elif groups["n"] or groups["n2"]:
        count = min(_count(groups["n"] or groups["n2"]), 999)
        unit = groups["unit"] or groups["unit2"]
        if groups["dir"] == "ago":
            count = -count
        if unit.startswith("month"):
            found.add(_add_months(today, count))
        else:
            found.add(today + timedelta(days=count * (7 if unit.startswith("week") else 1)))
    elif groups["span"]:
        found |= _relative_span(groups["span"], today)
    return found


def _relative_day(word: str, today: date) -> set[date]:
    if "after tomorrow" in word:
        return {today + timedelta(days=2)}
    if "before yesterday" in word:
        return {today - timedelta(days=2)}
    if word == "tomorrow":
        return {today + timedelta(days=1)}
    if word == "yesterday":
        return {today - timedelta(days=1)}
    return {today}


def _relative_weekday(name: str, which: str | None, today: date) -> set[date]:
    weekday = WEEKDAYS.index(name)
    ahead = (weekday - today.weekday()) % 7
    upcoming = today + timedelta(days=ahead)
    if which in ("last", "past"):
        behind = (today.weekday() - weekday) % 7 or 7
        return {today - timedelta(days=behind)}
    found = {upcoming, upcoming + timedelta(days=7)} if ahead == 0 else {upcoming}
    if which == "next":
        found.add(upcoming + timedelta(days=7))
    return found


def _relative_span(words: str, today: date) -> set[date]:
    monday = today - timedelta(days=today.weekday())
    month_end = date(today.year, today.month, calendar.monthrange(today.year, today.month)[1])
    next_month = _add_months(today.replace(day=1), 1)
    next_month_days = calendar.monthrange(next_month.year, next_month.month)[1]
    if words == "next week":
        return _days(monday + timedelta(days=7), 7)
    if words == "this week":
        return _days(today, 7 - today.weekday())
    if words == "end of next week":
        return {monday + timedelta(days=11), monday + timedelta(days=13)}
    if words.startswith("end of") and words.endswith("week"):
        return {monday + timedelta(days=4), monday + timedelta(days=6)}
    if words == "next weekend":
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        return _days(saturday, 2) | _days(saturday + timedelta(days=7), 2)
    if words.endswith("weekend"):
        return _days(today + timedelta(days=(5 - today.weekday()) % 7), 2)
    if words == "next month":
        return _days(next_month, next_month_days)
    if words == "end of next month":
        return {next_month.replace(day=next_month_days)}
    if words.startswith("end of"):
        return {month_end}
    return _days(today, (month_end - today).days + 1)  # this month, later this month
