"""What a dialogue has said so far, outside the assistant's own turns.

`Evidence` gathers the facts of the system prompt, the policy, user turns and tool outputs
(texts, numbers, dates, times, durations, the JSON objects of outputs) and remembers where
each was first seen, so a check can answer "does this value appear earlier?" and name the
nearest thing it searched. The grounding check (arguments) and the claims check (assistant
text) both read it; neither lets the assistant ground itself.
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import date, datetime
from typing import Any

from gem_graph import strictjson
from gem_graph.checks import spans
from gem_graph.checks.relative import relative_dates

_PHONE_IN_TEXT = re.compile(r"\+?\d[\d\s().\-/]{5,}\d")
_YEAR = re.compile(r"(?<![\w\-/.:])(19\d{2}|20\d{2}|21\d{2})(?![\w\-/:]|\.\d)")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_DAY_KEYS = re.compile(r"(?:^|_)(days?|nights?|weeks?)(?:_|$)|(?:Days?|Nights?|Weeks?)$")
_MINUTE_KEYS = re.compile(r"(minutes?|mins?|duration|hours?)", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.,\-])(\d+(?:\.\d+)?)\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)
_PERCENT_KEYS = re.compile(r"(percent|pct|rate|discount)", re.IGNORECASE)


def norm(text: str) -> str:
    """Case-folded text with whitespace collapsed: how texts are compared."""
    return " ".join(text.casefold().split())


def number_key(value: float) -> float:
    """The key numbers are compared by: the signed value, rounded to 6 places."""
    return round(value, 6)


def token_pattern(needle: str) -> str:
    """A regex finding `needle` as a whole token: `ORD-12` is not inside `ORD-123`, nor
    `1001` inside `ORD-1001`."""
    return r"(?<!\w)(?<!\w[-/.:@+])" + re.escape(needle) + r"(?!\w)(?![-/.:@+]\w)"


class Evidence:
    """The facts of everything said before the message being checked (see module doc)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.texts: list[tuple[str, str]] = []  # (normalized text, where)
        self._joined = ""
        self.numbers: dict[float, str] = {}
        self.aggregates: dict[float, str] = {}  # list lengths and column sums of outputs
        self.digit_runs: set[str] = set()
        self.dates: dict[tuple[int | None, int, int], str] = {}
        self.relative: dict[date, str] = {}
        self.times: dict[int, str] = {}
        self.day_durations: set[int] = set()
        self.minute_durations: set[int] = set()
        self.years: set[int] = set()
        self.percents: set[float] = set()
        self.output_words: set[str] = set()
        self.words: set[str] = set()
        self.objects: list[tuple[dict[str, Any], str]] = []  # every JSON object of outputs
        self.values: list[tuple[str, str, str]] = []  # (key, string value, where) of outputs

    # -- adding -------------------------------------------------------------------------
    def add_text(self, text: str, where: str, *, user: bool = False) -> None:
        """Add a text; `user` marks a user turn, whose relative dates ("tomorrow") count."""
        if not isinstance(text, str) or not text.strip():
            return
        self.texts.append((norm(text), where))
        self._joined = ""
        for value in spans.standalone_numbers(text) + spans.spelled_numbers(text):
            self.numbers.setdefault(number_key(value), where)
        for match in _PHONE_IN_TEXT.findall(text):
            digits = re.sub(r"\D", "", match)
            if len(digits) >= 7:
                self.digit_runs.add(digits)
        for span in spans.date_spans(text):
            for key in span.candidates:
                self.dates.setdefault(key, where)
                self.dates.setdefault((None, key[1], key[2]), where)
                if key[0] is not None:
                    self.years.add(key[0])
        for time in spans.time_spans(text):
            self.times.setdefault(time.minutes, where)
        for minutes in spans.spoken_times(text) if user else ():
            self.times.setdefault(minutes, where)
        self.day_durations |= spans.day_durations(text)
        lengths = spans.minute_durations(text)
        self.minute_durations |= lengths
        self.day_durations |= {m // 1440 for m in lengths if m and m % 1440 == 0}  # 48 hours
        self.years |= {int(y) for y in _YEAR.findall(spans.mask(text, _date_ranges(text)))}
        self.percents |= {float(p) for p in _PERCENT.findall(text)}
        self.words |= {w.casefold() for w in _WORD.findall(text)}
        if user:
            for day in relative_dates(text, self.now.date()):
                self.relative.setdefault(day, where)

    def add_tool_output(self, content: str, where: str) -> None:
        """Add a tool message: its raw text plus the strings, numbers and objects of its JSON."""
        self.add_text(content, where)
        if isinstance(content, str):
            self.output_words |= {w.casefold() for w in _WORD.findall(content)}
        try:
            value = strictjson.loads(content)
        except strictjson.StrictJSONError:  # not JSON, or too deep/ambiguous to read
            return
        self._collect(value, where, "")

    def _collect(self, value: Any, where: str, key: str) -> None:
        if isinstance(value, dict):
            self.objects.append((value, where))
            for name, item in value.items():
                self.words |= {w.casefold() for w in _WORD.findall(str(name))}
                self._collect(item, where, str(name))
        elif isinstance(value, list):
            self.aggregates.setdefault(number_key(float(len(value))), where)
            for name, total in _column_sums(value).items():
                self.aggregates.setdefault(number_key(total), f"{where} (sum of {name})")
            for item in value:
                self._collect(item, where, key)
        elif isinstance(value, str):
            self.add_text(value, where)
            self.values.append((key, value, where))
        elif _is_number(value):
            self.numbers.setdefault(number_key(float(value)), where)
            if _DAY_KEYS.search(key) and float(value).is_integer():
                weeks = "week" in key.casefold()
                self.day_durations.add(int(value) * (7 if weeks else 1))
            elif _MINUTE_KEYS.search(key) and float(value).is_integer():
                hours = "hour" in key.casefold()
                self.minute_durations.add(int(value) * (60 if hours else 1))
            elif _PERCENT_KEYS.search(key):
                self.percents.add(float(value))

    def add_number(self, value: float, where: str) -> None:
        """Add a number the checks have already found supported (a verified derivation)."""
        self.numbers.setdefault(number_key(value), where)

    # -- asking -------------------------------------------------------------------------
    def joined(self) -> str:
        if not self._joined:
            self._joined = "\n\x00\n".join(text for text, _ in self.texts)
        return self._joined

    def find_text(self, value: str) -> str | None:
        """Where `value` first appears as a whole token sequence, or None."""
        needle = norm(value)
        if not needle:
            return "empty"
        pattern = re.compile(token_pattern(needle))
        for text, where in self.texts:
            if pattern.search(text):
                return where
        return None

    def has_text(self, value: str) -> bool:
        """True if `value` appears as a whole token sequence in an earlier text."""
        needle = norm(value)
        return not needle or re.search(token_pattern(needle), self.joined()) is not None

    def has_number(self, value: float) -> bool:
        return number_key(value) in self.numbers

    def has_digits(self, digits: str) -> bool:
        return any(
            run == digits
            or (min(len(run), len(digits)) >= 7 and (run.endswith(digits) or digits.endswith(run)))
            for run in self.digit_runs
        )

    def find_date(self, year: int | None, month: int, day: int) -> str | None:
        """Where the date was said or can be derived from, or None.

        A date said without a year stands for the scenario's year, a year said elsewhere, or
        the occurrence nearest to the scenario clock. Relative dates of user turns count
        ("tomorrow"), and so does a said date (or today) plus or minus a said number of days.
        """
        if year is None:
            if (None, month, day) in self.dates:
                return self.dates[(None, month, day)]
            year = self.nearest_year(month, day)
            if year is None:
                return None
        elif (year, month, day) in self.dates:
            return self.dates[(year, month, day)]
        elif (None, month, day) in self.dates and (
            year in self.years or year == self.now.year or year == self.nearest_year(month, day)
        ):
            return self.dates[(None, month, day)]
        try:
            target = date(year, month, day)
        except ValueError:
            return None
        if target in self.relative:
            return self.relative[target]
        return self.date_from_anchor(target)

    def date_from_anchor(self, target: date) -> str | None:
        """A said full date (or today) plus or minus a said number of days, or None."""
        anchors: dict[date, str] = {self.now.date(): "the scenario clock"}
        for (y, m, d), where in self.dates.items():
            year = y if y is not None else self.nearest_year(m, d)
            if year is not None:
                with contextlib.suppress(ValueError):  # Feb 29 of a common year
                    anchors.setdefault(date(year, m, d), where)
        for anchor, where in anchors.items():
            if abs((target - anchor).days) in self.day_durations:
                return f"{where} ± {abs((target - anchor).days)} days"
        return None

    def nearest_year(self, month: int, day: int) -> int | None:
        """The year of the occurrence of (month, day) nearest to the scenario clock."""
        best: tuple[int, int] | None = None
        for year in (self.now.year - 1, self.now.year, self.now.year + 1):
            try:
                gap = abs((date(year, month, day) - self.now.date()).days)
            except ValueError:
                continue
            if best is None or gap < best[0]:
                best = (gap, year)
        return best[1] if best else None

    def find_time(self, minutes: int) -> str | None:
        """Where the time of day was said, or a said time plus or minus a said duration."""
        if minutes in self.times:
            return self.times[minutes]
        for time, where in self.times.items():
            if abs(minutes - time) in self.minute_durations:
                return f"{where} ± {abs(minutes - time)} minutes"
        return None


def _date_ranges(text: str) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in spans.date_spans(text)]


def _is_number(value: Any) -> bool:
    """A JSON number the checks can use: finite and below 1e15 (a bigger one is an id)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 10**15 and math.isfinite(value)


def _column_sums(items: list[Any]) -> dict[str, float]:
    """Per numeric key of a list of objects: the sum over the items, and the sum of the
    products of two keys (quantity × unit_price)."""
    rows = [item for item in items if isinstance(item, dict)]
    if len(rows) < 2:
        return {}
    keys = [k for k in rows[0] if all(_is_number(r.get(k)) for r in rows)]
    sums = {k: float(sum(r[k] for r in rows)) for k in keys}
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            sums[f"{a} × {b}"] = float(sum(r[a] * r[b] for r in rows))
    return sums
