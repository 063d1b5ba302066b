"""Facts written in text: numbers, dates, times of day and durations.

Shared by the grounding check (argument values) and the claims check (what the assistant
says), so that both read "March 14", "14:00" or "in 3 days" the same way. Pure functions
over strings; nothing here decides what counts as grounded.

Public API:
- `wordset(text)`: a frozenset of the words of a string (for word lists).
- `scenario_clock(now)`: the scenario's datetime (the runtime default when None or bad).
- `number_words`, `standalone_numbers(text)`: numbers that stand alone as a token, signed.
- `date_spans(text)`, `time_spans(text)`: dates and times of day with their positions.
- `day_durations(text)`, `minute_durations(text)`: "14 days", "2 weeks", "30 minutes".
- `sentences(text)`, `sentence_of(bounds, position)`: sentence boundaries ("Dr." ends none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from gem_graph.runtime import DEFAULT_NOW

DateKey = tuple[int | None, int, int]
"""(year or None when the text gives none, month, day)."""


def wordset(text: str) -> frozenset[str]:
    """The words of `text` as a set: word lists stay readable in the source."""
    return frozenset(text.split())


_NUMBER_NAMES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: dict[str, int] = {word: value for value, word in enumerate(_NUMBER_NAMES.split())}
NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
_TENS_NAMES = "thirty forty fifty sixty seventy eighty ninety"
TENS: dict[str, int] = {word: 10 * (index + 3) for index, word in enumerate(_TENS_NAMES.split())}
_TENS_WORD = re.compile(
    r"\b(twenty|" + "|".join(TENS) + r")(?:[- ](one|two|three|four|five|six|seven|eight|nine))?\b"
    r"|\b(?:a|one) (hundred|thousand)\b|\ba dozen\b",
    re.IGNORECASE,
)
MONTHS: dict[str, int] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UNIT_OR_ORDINAL = re.compile(
    r"^\d+(?:st|nd|rd|th|am|pm|h|hr|hrs|min|mins|s|sec|ms|d|wk|mo|yr|yrs|x|k|m|b|"
    r"kg|g|mg|lb|lbs|oz|km|cm|mm|mi|ft|in|ml|l|kb|mb|gb|tb|px|p|hz|khz|mhz|ghz|gbps|mbps|w|"
    r"kw|v|mah|gen)$",
    re.IGNORECASE,
)

_MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO_DATETIME = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?(?!\d)"
)
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?!\d)")
_SLASH_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])")
_DOT_DATE = re.compile(r"(?<!\d)(?<!\d\.)(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?!\.?\d)")
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD}\b(?:,?\s+(\d{{4}})\b)?", re.IGNORECASE)
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+(\d{{4}})\b)?", re.IGNORECASE
)
_WEEKDAY_BEFORE = re.compile(r"\b(" + "|".join(WEEKDAYS) + r"),?\s+(?:the\s+)?$", re.IGNORECASE)
_CLOCK = re.compile(
    r"(?<![\d:.])(\d{1,2}):(\d{2})(?::\d{2})?(?:\s?([ap])\.?m\b\.?)?(?![\d:])", re.IGNORECASE
)
_HOUR_AMPM = re.compile(r"(?<![\d:.])\b(\d{1,2})\s?([ap])\.?m\b\.?", re.IGNORECASE)
_NAMED_TIME = re.compile(r"\b(noon|midday|midnight)\b", re.IGNORECASE)
_BARE_HOUR = re.compile(
    r"\b(?:at|around|by|from|until|till|after|before)\s+(\d{1,2})(?:\s*o'?clock)?"
    r"(?=\s*(?:$|[.,;!?)]|\s(?:on|today|tomorrow|tonight|this|next|then|or|and|please)\b))",
    re.IGNORECASE,
)
_STANDALONE = re.compile(
    r"(?<![\w.,/:@#+\-−])([-−]?)[$€£¥]?(\d+(?:,\d{3})*(?:\.\d+)?)(%|[a-z]+)?"
    r"(?![\w/:@]|[.,\-]\d|-[^\W\d_])",
    re.IGNORECASE,
)
_HASH_NUMBER = re.compile(r"(?<![\w#])#(\d+)(?!\w)")
_DAY_DURATION = re.compile(
    r"(?<![\w.,\-])(\d+|" + "|".join(NUMBER_WORDS) + r"|a|an)\s+(?:(?:working|business|"
    r"calendar|full|more|extra|additional)\s+)?(days?|nights?|weeks?)\b",
    re.IGNORECASE,
)
_MINUTE_DURATION = re.compile(
    r"(?<![\w.,\-])(?:(\d+)\s*|(" + "|".join(NUMBER_WORDS) + r"|an?)\s+)"
    r"(minutes?|mins?|hours?|hrs?|h)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DateSpan:
    """A date written in a text: where it is, and the dates it can mean."""

    start: int
    end: int
    candidates: tuple[DateKey, ...]
    weekday: int | None = None  # 0 = Monday, when a weekday name is written before it


@dataclass(frozen=True)
class TimeSpan:
    """A time of day written in a text, as minutes after midnight."""

    start: int
    end: int
    minutes: int


def scenario_clock(now: str | None) -> datetime:
    """The scenario clock as an aware datetime; the runtime default for None or garbage."""
    try:
        value = datetime.fromisoformat(now) if isinstance(now, str) else None
    except ValueError:
        value = None
    if value is None:
        value = datetime.fromisoformat(DEFAULT_NOW)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each (start, end) span blanked out, positions preserved."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _valid(month: int, day: int, year: int | None = None) -> bool:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: Feb 29 stays possible
    except ValueError:
        return False
    return True


def _year(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text)
    return value + 2000 if value < 100 else value


def date_spans(text: str, *, loose: bool = True) -> list[DateSpan]:
    """Every date in `text`; ambiguous slash/dot dates carry both readings. With `loose`
    False, a slash or dot date needs a year (so "1/2" is not read as a date)."""
    found: list[DateSpan] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], keys: list[DateKey]) -> None:
        start, end = match.span()
        if any(start < e and s < end for s, e in taken):
            return
        keys = [k for k in keys if _valid(k[1], k[2], k[0])]
        if not keys:
            return
        taken.append((start, end))
        before = _WEEKDAY_BEFORE.search(text[max(0, start - 14) : start])
        weekday = WEEKDAYS.index(before.group(1).lower()) if before else None
        found.append(DateSpan(start, end, tuple(dict.fromkeys(keys)), weekday))

    for match in _ISO_DATE.finditer(text):
        y, m, d = match.groups()
        add(match, [(int(y), int(m), int(d))])
    for match in _MONTH_DAY.finditer(text):
        month, d, y = match.groups()
        add(match, [(_year(y), MONTHS[month.lower()], int(d))])
    for match in _DAY_MONTH.finditer(text):
        d, month, y = match.groups()
        add(match, [(_year(y), MONTHS[month.lower()], int(d))])
    for pattern in (_DOT_DATE, _SLASH_DATE):
        for match in pattern.finditer(text):
            a, b, y = match.groups()
            if not (y or loose):
                continue
            # month first (US) or day first: accept either reading
            add(match, [(_year(y), int(a), int(b)), (_year(y), int(b), int(a))])
    return sorted(found, key=lambda span: span.start)


def time_spans(text: str) -> list[TimeSpan]:
    """Every time of day written as `14:00`, `9:30 am`, `3pm` or inside an ISO datetime."""
    found: list[TimeSpan] = []
    for match in _ISO_DATETIME.finditer(text):
        hour, minute = int(match.group(4)), int(match.group(5))
        if hour < 24 and minute < 60:
            found.append(TimeSpan(match.start(4), match.end(5), hour * 60 + minute))
    rest = mask(text, [m.span() for m in _ISO_DATETIME.finditer(text)])
    for match in _CLOCK.finditer(rest):
        hour, minute, half = int(match.group(1)), int(match.group(2)), match.group(3)
        if minute >= 60 or hour >= 24 or (half and not 1 <= hour <= 12):
            continue
        found.append(TimeSpan(*match.span(), _clock(hour, minute, half)))
    rest = mask(rest, [m.span() for m in _CLOCK.finditer(rest)])
    for match in _HOUR_AMPM.finditer(rest):
        hour, half = int(match.group(1)), match.group(2)
        if 1 <= hour <= 12:
            found.append(TimeSpan(*match.span(), _clock(hour, 0, half)))
    return sorted(found, key=lambda span: span.start)


def _clock(hour: int, minute: int, half: str | None) -> int:
    if half:
        hour = hour % 12 + (12 if half.lower() == "p" else 0)
    return hour * 60 + minute


def spoken_times(text: str) -> set[int]:
    """Times a person may mean without writing a clock time: "noon", "at 3" (3:00 or 15:00)."""
    found: set[int] = set()
    for match in _NAMED_TIME.finditer(text):
        found.add(0 if match.group(1).lower() == "midnight" else 12 * 60)
    for match in _BARE_HOUR.finditer(text):
        hour = int(match.group(1))
        if hour < 24:
            found.add(hour * 60)
        if 1 <= hour < 12:
            found.add((hour + 12) * 60)
    return found


def date_and_time_ranges(text: str) -> list[tuple[int, int]]:
    """Where `text` writes dates and times, so number readers can skip them."""
    spans = [(s.start, s.end) for s in date_spans(text)]
    spans += [m.span() for m in _ISO_DATETIME.finditer(text)]
    spans += [(s.start, s.end) for s in time_spans(text)]
    return spans


def standalone_numbers(text: str) -> list[float]:
    """Signed numbers that stand alone as tokens: `42`, `-5`, `$42.50`, `1,250`, `12%`,
    `10kg`, `#1001`. A number inside another token (`ORD-1001`, `3-pack`) or a date or time
    is not one."""
    rest = mask(text, date_and_time_ranges(text))
    values: list[float] = []
    for match in _STANDALONE.finditer(rest):
        sign, digits, unit = match.groups()
        if unit and unit != "%" and not UNIT_OR_ORDINAL.match(digits + unit):
            continue
        value = float(digits.replace(",", ""))
        values.append(-value if sign else value)
    values.extend(float(m.group(1)) for m in _HASH_NUMBER.finditer(rest))
    return values


def spelled_numbers(text: str) -> list[float]:
    """Numbers written as words: zero to ninety-nine, "a hundred", "a thousand", "a dozen"."""
    found = [float(NUMBER_WORDS[m.group(1).lower()]) for m in NUMBER_WORD.finditer(text)]
    for match in _TENS_WORD.finditer(text):
        tens, unit, big = match.groups()
        if big:
            found.append(100.0 if big.lower() == "hundred" else 1000.0)
        elif tens:
            value = 20 if tens.lower() == "twenty" else TENS[tens.lower()]
            found.append(float(value + (NUMBER_WORDS[unit.lower()] if unit else 0)))
        else:
            found.append(12.0)
    return found


def _count(word: str) -> int:
    word = word.lower()
    if word in ("a", "an"):
        return 1
    return NUMBER_WORDS[word] if word in NUMBER_WORDS else int(word)


def day_durations(text: str) -> set[int]:
    """Lengths of time in days that `text` states ("14 days", "two weeks", "3 nights")."""
    found: set[int] = set()
    for match in _DAY_DURATION.finditer(text):
        count = _count(match.group(1))
        found.add(count * 7 if match.group(2).lower().startswith("week") else count)
    return found


def minute_durations(text: str) -> set[int]:
    """Lengths of time in minutes that `text` states ("30 minutes", "2 hours")."""
    found: set[int] = set()
    for match in _MINUTE_DURATION.finditer(text):
        count = _count(match.group(1) or match.group(2))
        found.add(count * 60 if match.group(3).lower().startswith("h") else count)
    return found


ABBREVIATIONS = wordset(
    "dr mr mrs ms st prof vs etc no approx ave jr sr inc ltd co e.g i.e fig mt ft"
)
"""Words whose trailing dot ends no sentence."""


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; lines are sentences too; "Dr." ends none."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for match in re.finditer(r"[.!?]+(?=\s)|\n+", text):
        if match.group(0).startswith("."):
            word = re.search(r"([\w.]+)$", text[start : match.start()])
            if word and (word.group(1).casefold() in ABBREVIATIONS or len(word.group(1)) == 1):
                continue
        bounds.append((start, match.end()))
        start = match.end()
    bounds.append((start, len(text)))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def sentence_of(bounds: list[tuple[int, int]], position: int) -> tuple[int, int]:
    """The (start, end) of `bounds` that holds `position`; (0, 0) when none does."""
    for start, end in bounds:
        if start <= position < end:
            return start, end
    return 0, 0
