"""What the assistant says must be supported by the dialogue, and its outcomes must be real.

Replay proves every tool call; this check covers the assistant's text. It is pure (no I/O,
no model) and heuristic, tuned so that the gold dialogues produce no problem.

Public API:
- `check_claims(messages, tools, *, scenario_now=None, read_only_tools=None, policy="")
  -> list[ProblemDict]` with codes `ungrounded_claim`, `contradicts_output`,
  `false_success` and `unbacked_action`, each `where` = `messages[i]`.

Factual spans read from every assistant text: amounts with a currency (`$12.50`, `30 EUR`),
percentages, numbers with a unit or a counted noun (`30 days`, `3 units`, `two open slots`,
`2 × ...`), dates (`March 14`, `2025-03-14`, `Friday, January 3`), times of day (`14:00`,
`3pm`), short ids after a cue word (`seat 4B`, `room 12`, `#12`; longer ids are the grounding
check's `stated_ids`), phone and card numbers, quoted strings, and names: strings of a tool
output that the text repeats, and Title Case names that resemble one.

A span is supported by evidence from before the message: the system prompt, the policy,
user turns and earlier tool outputs (their text and JSON values, list lengths and column
sums). Assistant values that passed the check count for later ones, so a chain of
arithmetic is fine. Derivations accepted, one step from supported values: a sum or
difference; a product with a count; a ratio (a half, a third, a value over a count); a
stated percentage of a value, or the value plus or minus it; a value as a percentage of
another; with "at least"/"more than"/"below"... a money value one cent off. Durations: the
number of days (hours, minutes) between two supported dates (times), today and now
included ("in 9 days", "11 hours and 30 minutes"). Dates: today, tomorrow and yesterday by
the scenario clock, what the user's relative dates resolve to, and a supported date plus or
minus a stated number of days ("48 hours" is 2 days). Times: a supported time plus or minus
a stated duration. A weekday written next to a date must be that date's weekday. Numbers in
a question that offers a choice ("Would you like to pay $5 now?") are proposals, not
claims. Unsupported: `ungrounded_claim`, naming the span and the nearest evidence searched.

`contradicts_output`: a span whose neighbouring words name a field of an earlier output
("due 2025-03-14" and `due_date`, "refund of $50" and `refund_amount`), with a different
value. When the sentence names the thing (an id or name of that output object, or of an
object with the same id), its value must be the field's or derived from it; otherwise the
span is only reported when nothing supports it. An unsupported amount, date or time in a
sentence about an output object that has a field of that kind is reported against that
field. A Title Case name that shares words with a name in an earlier output but has a word
found nowhere earlier ("Dune Messiah" for "Dune", "Dr. Elena Ross" for "Dr. Elena Voss") is
reported too.

Outcomes (`false_success`, `unbacked_action`) are checked by `checks/outcomes.py`;
`check_claims` reports its problems too, so it is the one entry point for what the
assistant says.

Known blind spots: prose numbers without a unit or currency ("your order 2 ..."), names
that share no word with any output value, a right value attached to the wrong object
outside a labelled field ("I froze your card ending 4417" when 4417 is the other card),
numbers offered in a question, and any invented value that one of the derivations happens
to reproduce.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from gem_graph import strictjson
from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence, norm
from gem_graph.checks.grounding import stated_ids
from gem_graph.checks.outcomes import check_outcomes
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.spans import wordset
from gem_graph.checks.trajectory import message_text

# -- span patterns ---------------------------------------------------------------------
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_WORDNUM = "|".join(w for w in spans.NUMBER_WORDS if w not in ("zero", "one"))
_SCALE = r"(?:\s?(k|bn|million|billion|thousand)\b)?"
_MONEY_BEFORE = re.compile(
    rf"(?<![\w.,])([-−])?\s?(?:US\$|\$|€|£|¥)\s?({_NUM}){_SCALE}", re.IGNORECASE
)
_MONEY_AFTER = re.compile(
    rf"(?<![\w.,\-/:#])({_NUM}){_SCALE}\s?(USD|EUR|GBP|CHF|dollars?|euros?|pounds?|bucks)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"(?<![\w.,\-/:#])({_NUM})\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)
_TIMES_SIGN = re.compile(rf"(?<![\w.,\-/:#$€£])({_NUM}|{_WORDNUM}|one)\s?(?:×|x(?=\s))", re.I)
_COUNTED = re.compile(rf"(?<![\w.,\-/:#$€£¥+])({_NUM}|{_WORDNUM})\s+([a-z]+)(?:\s+([a-z]+))?\b")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d().\- ]{5,}\d(?![\w])")
_QUOTE = re.compile(r'(?<!\w)"(?=\S)([^"\n]{1,200})(?<=\S)"(?!\w)|“([^”\n]{1,200})”')
_SHORT_ID = re.compile(
    r"\b(?:id|code|number|no\.|ref|reference|ticket|booking|confirmation|room|seat|gate|"
    r"table|slot|case|locker|pin|row|bay|platform|terminal)\s?(?:#|:)?\s?"
    r"(#?[A-Za-z]?\d{1,4}[A-Za-z]?)(?![\w\-])",
    re.IGNORECASE,
)
_HASH_ID = re.compile(r"(?<![\w#])#\d{1,2}(?!\w)")
_UNIT_WORDS = wordset(
    "minute minutes min mins hour hours hr hrs day days night nights week weeks "
    "month months year years second seconds km kg g mg lb lbs oz cm mm ml miles "
    "mile meters metres meter metre feet foot inches inch liters litres liter litre "
    "gb mb tb"
)
_NOT_NOUNS = wordset(
    "is was has does this its his plus less yes thus us as always across unless "
    "perhaps minus bonus status series news was has its whereas besides towards "
    "afterwards"
)
_NOT_ADJECTIVES = wordset(
    "of in on at to for and or but is are was were be been has have had will would "
    "can could should may might must the a an per than from by with into onto over "
    "under as if so that this these those it its their our your my his her we you "
    "they i times x out off up down"
)
_QUOTE_CUES = re.compile(
    r"\b(?:say|says|said|reply|replies|type|enter|click|press|tap|select|choose|open|pick|"
    r"write|answer|respond|go to|look for|find|search for|labell?ed|button|tab|menu|option|"
    r"field|link|subject)\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
_FREE_QUOTES = frozenset({"yes", "no", "ok", "okay", "y", "n", "confirm", "cancel", "stop"})
_BOUND_CUE = re.compile(
    r"\b(?:at least|at most|more than|less than|over|under|below|above|up to|no more than|"
    r"minimum(?: of)?|maximum(?: of)?)\s*$",
    re.IGNORECASE,
)
_APPROX_CUE = re.compile(r"(?:\b(?:about|around|approximately|roughly|nearly|almost)|~)\s*$", re.I)
_HONORIFIC = re.compile(r"^(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sir|Dame)\.?$")
_CAP_RUN = re.compile(
    r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\.?\s+)?[A-Z][\w'’\-]*"
    r"(?:\s+(?:(?:of|the|and|de|du|van|von|da|la|le|del|&)\s+)?[A-Z0-9][\w'’\-]*)*"
)
_COMMON_CAPS = wordset(
    "i i'm i've i'll i'd ok okay yes no hi hello hey dear thanks thank please sorry "
    "sure great perfect done good welcome you your we our the a an and or but so if "
    "to for on in at by of as is it this that these those there here then also mr "
    "mrs ms dr prof"
)
_GENERIC_KEY_WORDS = wordset(
    "at on date time datetime amount value id ids name names num number is the of "
    "in new current usd eur gbp cents code type status"
)
_KEY_WORD = re.compile(r"[a-z]+")
_OFFER = re.compile(
    r"\b(?:would you like|do you want|shall i|should i|can i|may i|want me to|how about|"
    r"would you prefer|would it help)\b",
    re.IGNORECASE,
)
_CATEGORY_KEYS = wordset(
    "status state type kind category categories specialty speciality level tier method mode "
    "reason role department genre tag tags label"
)
_MONEY_KEY_WORDS = wordset(
    "amount price total balance fee fees cost refund charge paid fine fines subtotal tax "
    "credit debit payment limit deposit rent due owed"
)


@dataclass
class _Span:
    """One factual span of an assistant text."""

    kind: str  # amount, percent, quantity, date, time, id, phone, quote, name
    start: int
    end: int
    text: str
    number: float = 0.0
    decimals: int = 0
    date_span: spans.DateSpan | None = None
    minutes: int = 0


# -- entry point -----------------------------------------------------------------------
def check_claims(
    messages: Any,
    tools: Any,
    *,
    scenario_now: str | None = None,
    read_only_tools: Iterable[str] | None = None,
    policy: str = "",
) -> list[ProblemDict]:
    """`ungrounded_claim`, `contradicts_output`, `false_success` and `unbacked_action`
    problems of the assistant's text (see the module docstring), in message order."""
    if not isinstance(messages, list):
        return []
    evidence = Evidence(spans.scenario_clock(scenario_now))
    if isinstance(policy, str) and policy.strip():
        evidence.add_text(policy, "policy")
    names = _output_names(messages)
    problems: list[tuple[int, ProblemDict]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role, text, where = message.get("role"), message_text(message), f"messages[{index}]"
        if role in ("system", "user"):
            evidence.add_text(text, where, user=role == "user")
        elif role == "tool":
            evidence.add_tool_output(text, where)
        elif role == "assistant" and text.strip():
            problems.extend((index, p) for p in _check_text(text, evidence, names, where))
    outcomes = check_outcomes(messages, tools, read_only_tools=read_only_tools)
    problems.extend((_index(p["where"]), p) for p in outcomes)
    return [p for _, p in sorted(problems, key=lambda item: item[0])]


def _index(where: str) -> int:
    """The message index of a `where` such as `messages[4]` (-1 for anything else)."""
    found = re.match(r"messages\[(\d+)\]", where)
    return int(found.group(1)) if found else -1


def _output_names(messages: list[Any]) -> dict[str, str]:
    """Name-like strings of every tool output (2 to 8 words, capitalised), where first seen."""
    found: dict[str, str] = {}
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            continue
        try:
            value = strictjson.loads(message_text(message))
        except strictjson.StrictJSONError:
            continue
        for key, text in _strings(value, ""):
            words = text.split()
            if (
                not _CATEGORY_KEYS.intersection(_KEY_WORD.findall(key.casefold()))
                and 2 <= len(words) <= 8
                and len(text) <= 80
                and text[:1].isupper()
                and not re.search(r"[@/]|\d{4}-\d{2}", text)
            ):
                found.setdefault(text.strip(), f"messages[{index}]")
    return found


def _strings(value: Any, key: str) -> Iterable[tuple[str, str]]:
    """(key, string) of every string in a JSON value; list items keep their list's key."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, key)


# -- span extraction -------------------------------------------------------------------
def _extract(text: str, names: Iterable[str]) -> list[_Span]:
    """Every factual span of `text`, without overlaps."""
    found: list[_Span] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return not any(start < e and s < end for s, e in taken)

    def add(span: _Span) -> None:
        if free(span.start, span.end):
            found.append(span)
            taken.append((span.start, span.end))

    for quote in _QUOTE.finditer(text):
        inner = quote.group(1) or quote.group(2) or ""
        if inner.strip():
            add(_Span("quote", quote.start(), quote.end(), inner.strip()))
    for name in sorted(names, key=len, reverse=True):
        for match in re.finditer(r"(?<!\w)" + re.escape(name) + r"(?!\w)", text, re.I):
            if match.group(0)[:1].isupper():
                add(_Span("name", match.start(), match.end(), match.group(0)))
    for day in spans.date_spans(text, loose=False):
        add(_Span("date", day.start, day.end, text[day.start : day.end], date_span=day))
    for clock in spans.time_spans(text):
        add(
            _Span(
                "time", clock.start, clock.end, text[clock.start : clock.end], minutes=clock.minutes
            )
        )
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 7 <= len(digits) <= 16 and re.search(r"[\-. ()]", match.group(0).strip()):
            add(_Span("phone", match.start(), match.end(), match.group(0).strip()))
    for match in _MONEY_BEFORE.finditer(text):
        add(_number_span("amount", match, match.group(2), match.group(3)))
    for match in _MONEY_AFTER.finditer(text):
        add(_number_span("amount", match, match.group(1), match.group(2)))
    for match in _PERCENT.finditer(text):
        add(_number_span("percent", match, match.group(1), None))
    for match in _TIMES_SIGN.finditer(text):
        add(_number_span("quantity", match, match.group(1), None))
    for match in _COUNTED.finditer(text):
        if _counted_noun(match.group(2), match.group(3)):
            add(_number_span("quantity", match, match.group(1), None, end=match.end(1)))
    for match in _SHORT_ID.finditer(text):
        token = match.group(1)
        if not (token.lstrip("#").isalpha()):
            add(_Span("id", match.start(1), match.end(1), token))
    for match in _HASH_ID.finditer(text):
        add(_Span("id", match.start(), match.end(), match.group(0)))
    return sorted(found, key=lambda span: span.start)


def _counted_noun(first: str, second: str | None) -> bool:
    """True when the words after a number are a unit or a counted (plural) noun."""

    def noun(word: str | None) -> bool:
        if not word:
            return False
        word = word.casefold()
        return word in _UNIT_WORDS or (
            len(word) >= 4 and word.endswith("s") and word not in _NOT_NOUNS
        )

    if noun(first):
        return True
    return first.casefold() not in _NOT_ADJECTIVES and noun(second)


def _number_span(
    kind: str, match: re.Match[str], digits: str, scale: str | None, end: int | None = None
) -> _Span:
    """A number span from a match: `digits` (or a number word) times the `scale` word."""
    word = digits.casefold()
    if word in spans.NUMBER_WORDS:
        value, decimals = float(spans.NUMBER_WORDS[word]), 0
    else:
        value = float(digits.replace(",", ""))
        decimals = len(digits.split(".")[1]) if "." in digits else 0
    factor = {"k": 1e3, "thousand": 1e3, "million": 1e6, "bn": 1e9, "billion": 1e9}
    if scale:
        value *= factor[scale.casefold()]
    stop = match.end() if end is None else end
    shown = match.group(0)[: stop - match.start()].strip()
    return _Span(kind, match.start(), stop, shown, number=value, decimals=decimals)


# -- checking the text -----------------------------------------------------------------
def _check_text(
    text: str, evidence: Evidence, names: dict[str, str], where: str
) -> list[ProblemDict]:
    """The span problems of one assistant text; supported numbers join the evidence."""
    bounds = spans.sentences(text)
    problems: list[ProblemDict] = []
    extracted = _extract(text, names)
    about: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for span in extracted:
        sentence = spans.sentence_of(bounds, span.start)
        if sentence not in about:
            about[sentence] = _referents(text[sentence[0] : sentence[1]], evidence)
        found = _contradiction(text, sentence, span, evidence, about[sentence])
        if found is not None:
            problems.append(problem("contradicts_output", found, where))
            continue
        message = _unsupported(text, span, evidence)
        if message is not None:
            field_of = _referent_field(span, about[sentence])
            if field_of is not None:
                problems.append(problem("contradicts_output", field_of, where))
            else:
                problems.append(problem("ungrounded_claim", message, where))
        elif span.kind in ("amount", "percent", "quantity"):
            evidence.add_number(span.number, f"{where} (derived)")
    covered = [(s.start, s.end) for s in extracted]
    problems.extend(_check_cap_names(text, bounds, covered, evidence, where))
    return problems


def _unsupported(text: str, span: _Span, evidence: Evidence) -> str | None:
    """None when `span` is supported; else the problem message."""
    if span.kind in ("amount", "percent", "quantity"):
        if _number_supported(text, span, evidence) or _offered(text, span):
            return None
        return _ungrounded(span, _nearest_number(span.number, evidence))
    if span.kind == "date":
        return _date_problem(span, evidence)
    if span.kind == "time":
        if evidence.find_time(span.minutes) is not None:
            return None
        return _ungrounded(span, _nearest_time(span.minutes, evidence))
    if span.kind == "phone":
        if evidence.has_digits(re.sub(r"\D", "", span.text)):
            return None
        return _ungrounded(span, "no phone or card number with these digits")
    if span.kind == "id":
        token = span.text.lstrip("#")
        if evidence.has_text(span.text) or evidence.has_text(token):
            return None
        if token.isdigit() and evidence.has_number(float(token)):
            return None
        return _ungrounded(span, _nearest_string(token, evidence))
    if span.kind == "name":
        if evidence.find_text(span.text) is not None:
            return None
        return (
            f"the assistant names {span.text!r} before any earlier message does (the system "
            "prompt, the policy, user turns and earlier tool outputs were searched); look it "
            "up with a tool first"
        )
    return _quote_problem(text, span, evidence)


def _offered(text: str, span: _Span) -> bool:
    """True for a number in a question that offers a choice ("Would you like to pay $5
    now?"): a proposal, not a claim."""
    start, end = spans.sentence_of(spans.sentences(text), span.start)
    sentence = text[start:end].strip()
    return sentence.endswith("?") and bool(_OFFER.search(sentence))


def _ungrounded(span: _Span, nearest: str) -> str:
    return (
        f"the assistant states {span.text!r} ({span.kind}), which no earlier tool output, "
        "user turn, system prompt or policy supports, nor a sum, difference, product, ratio, "
        f"percentage, list count or date arithmetic of supported values; nearest evidence "
        f"searched: {nearest}; state only what the tools returned or the user said"
    )


# -- numbers ---------------------------------------------------------------------------
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


# -- dates and times -------------------------------------------------------------------
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


# -- strings ---------------------------------------------------------------------------
def _nearest_string(value: str, evidence: Evidence) -> str:
    """The earlier output string or word most like `value`."""
    candidates = [text for _, text, _ in evidence.values] + sorted(evidence.words)
    best = difflib.get_close_matches(value, candidates, n=1, cutoff=0.5)
    return repr(best[0]) if best else "nothing similar"


def _quote_problem(text: str, span: _Span, evidence: Evidence) -> str | None:
    """None for a quoted string said earlier (`in transit` matches `in_transit`), a yes/no,
    or an instruction ('click "Renew"'); else the message."""
    inner = span.text
    if (
        norm(inner) in _FREE_QUOTES
        or _QUOTE_CUES.search(text[max(0, span.start - 40) : span.start])
        or evidence.find_text(inner) is not None
        or evidence.find_text(re.sub(r"[\s-]+", "_", inner.strip())) is not None
        or evidence.find_text(re.sub(r"[_-]+", " ", inner)) is not None
    ):
        return None
    return _ungrounded(span, _nearest_string(inner, evidence))


def _similar_value(phrase: str, evidence: Evidence) -> tuple[str, str, str] | None:
    """The earlier output string (key, value, where) sharing most words with `phrase`."""
    words = {w.casefold() for w in re.findall(r"[^\W_]{3,}", phrase)} - _COMMON_CAPS
    best: tuple[float, tuple[str, str, str]] | None = None
    for key, value, where in evidence.values:
        shared = words & {w.casefold() for w in re.findall(r"[^\W_]{3,}", value)}
        if not shared or norm(value) == norm(phrase) or not value[:1].isupper():
            continue
        ratio = difflib.SequenceMatcher(None, phrase.casefold(), value.casefold()).ratio()
        if ratio < 0.5:
            continue
        score = len(shared) + ratio
        if best is None or score > best[0]:
            best = (score, (key, value, where))
    return best[1] if best else None


def _known_word(word: str, evidence: Evidence) -> bool:
    """True for a capitalised word said earlier, common, or a month or weekday name."""
    word = re.sub(r"['’]s$", "", word)
    parts = [p for p in re.split(r"[-'’.]", word.casefold()) if p]
    return (
        word.casefold() in _COMMON_CAPS
        or all(p in evidence.words for p in parts)
        or word.casefold() in spans.MONTHS
        or word.casefold() in spans.WEEKDAYS
        or evidence.has_text(word)
    )


def _check_cap_names(
    text: str,
    bounds: list[tuple[int, int]],
    covered: list[tuple[int, int]],
    evidence: Evidence,
    where: str,
) -> list[ProblemDict]:
    """Title Case names that resemble an output's name but differ, and honorific names
    (Dr. X) that nothing earlier mentions."""
    problems: list[ProblemDict] = []
    for match in _CAP_RUN.finditer(text):
        start, end = match.span()
        if any(start < e and s < end for s, e in covered):
            continue
        words = match.group(0).split()
        honorific = bool(_HONORIFIC.match(words[0]))
        names = words[1:] if honorific else words
        names = [w for w in names if w[:1].isupper() or w[:1].isdigit()]
        if len(names) < (1 if honorific else 2) or evidence.find_text(match.group(0)):
            continue
        lead = text[spans.sentence_of(bounds, start)[0] : start].strip(" \t*•>\"'“(")
        initial = lead == "" or lead.endswith((":", "-", "—", "–"))
        candidates = names[1:] if initial and not honorific else names
        unknown = [w for w in candidates if not _known_word(w.strip(".,"), evidence)]
        if not unknown:
            continue
        similar = _similar_value(match.group(0), evidence)
        if similar is not None:
            key, value, source = similar
            problems.append(
                problem(
                    "contradicts_output",
                    f"the assistant writes {match.group(0)!r}, but the tool output in "
                    f"{source} gives {key!r} = {value!r} ({unknown[0]!r} appears nowhere "
                    "earlier); copy names exactly as the tool returned them",
                    where,
                )
            )
        elif honorific:
            problems.append(
                problem(
                    "ungrounded_claim",
                    f"the assistant names {match.group(0)!r}, but {unknown[0]!r} appears in "
                    "no earlier tool output, user turn, system prompt or policy; nearest "
                    f"evidence searched: {_nearest_string(unknown[0], evidence)}",
                    where,
                )
            )
    return problems


# -- contradictions --------------------------------------------------------------------
def _stem(word: str) -> str:
    """A crude stem, so that "refunded" meets `refund_amount` and "delivery" `delivered_at`."""
    word = word.casefold()
    for suffix in ("ies", "ing", "als", "al", "ed", "es", "s", "y", "e", "d"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.rstrip("e")


def _window(text: str, sentence: tuple[int, int], span: _Span) -> set[str]:
    """Stems of the words next to a span (up to 4 before, 3 after), within its clause."""
    before = re.split(r"[,;:()\[\]\n]", text[sentence[0] : span.start])[-1]
    after = re.split(r"[,;:()\[\]\n.!?]", text[span.end : sentence[1]])[0]
    words = re.findall(r"[A-Za-z]+", before)[-4:] + re.findall(r"[A-Za-z]+", after)[:3]
    return {_stem(w) for w in words if len(w) >= 3}


def _key_matches(key: str, window: set[str]) -> bool:
    """True when a meaningful word of the field name (not "date", "amount", "id") is next to
    the span."""
    words = [w for w in _KEY_WORD.findall(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", key).casefold())]
    meaningful = [w for w in words if w not in _GENERIC_KEY_WORDS and len(w) >= 3]
    return bool(meaningful) and any(_stem(w) in window for w in meaningful)


def _field_value(span: _Span, value: Any) -> Any:
    """The field's value in the span's terms (a date, minutes, a number), or None when the
    types do not fit."""
    if span.kind in ("amount", "percent"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return abs(float(value))
        if isinstance(value, str) and re.fullmatch(r"-?\d+(?:\.\d+)?", value.strip()):
            return abs(float(value))
        return None
    if not isinstance(value, str):
        return None
    if span.kind == "date":
        found = re.match(r"^(\d{4})-(\d{2})-(\d{2})", value)
        if not found:
            return None
        year, month, day = (int(part) for part in found.groups())
        try:
            date(year, month, day)
        except ValueError:
            return None
        return (month, day, year)
    if span.kind == "time":
        times = spans.time_spans(value)
        return times[0].minutes if len(times) == 1 and len(value) <= 32 else None
    return None


def _same(span: _Span, field_value: Any) -> bool:
    """True when the span states the field's value (a date without a year: any year)."""
    if span.kind in ("amount", "percent"):
        return bool(abs(abs(span.number) - field_value) <= 0.005)
    if span.kind == "time":
        return bool(span.minutes == field_value)
    assert span.date_span is not None
    month, day, year = field_value
    return any(
        (m, d) == (month, day) and y in (None, year) for y, m, d in span.date_span.candidates
    )


def _derived_from(span: _Span, field_value: Any, evidence: Evidence) -> bool:
    """True when the span is one step from the field's value (see `_derivable`)."""
    if span.kind in ("amount", "percent"):
        pool = _Pool(evidence)
        target = abs(span.number)
        steps = [field_value + v for v in pool.values] + [field_value - v for v in pool.values]
        steps += [field_value * c for c in pool.counts] + [field_value / c for c in pool.counts]
        steps += [field_value * p / 100 for p in pool.percents]
        return any(abs(step - target) <= 0.005 for step in steps)
    if span.kind == "time":
        return abs(span.minutes - field_value) in evidence.minute_durations
    assert span.date_span is not None
    month, day, year = field_value
    anchor = date(year, month, day)
    for y, m, d in span.date_span.candidates:
        actual = _resolve(y if y else year, m, d, evidence)
        if actual is not None and abs((actual - anchor).days) in evidence.day_durations:
            return True
    return False


def _referents(part: str, evidence: Evidence) -> list[dict[str, Any]]:
    """The output objects a sentence is about: those holding one of its ids or names, and
    every object sharing their own id."""
    tokens = {t.casefold() for t in stated_ids(part)}
    tokens |= {m.group(1).casefold() for m in _SHORT_ID.finditer(part)}
    folded = norm(part)
    about: list[dict[str, Any]] = []
    own_ids: set[str] = set()
    for obj, _ in evidence.objects:
        for value in obj.values():
            if not isinstance(value, str | int) or isinstance(value, bool):
                continue
            value_text = str(value).casefold()
            if value_text in tokens or (
                len(value_text) >= 4
                and isinstance(value, str)
                and not value_text.isdigit()
                and re.search(r"(?<!\w)" + re.escape(norm(value)) + r"(?!\w)", folded)
                and (" " in value.strip() or not value.islower())
            ):
                about.append(obj)
                own = _own_id(obj)
                if own is not None:
                    own_ids.add(own)
                break
    for obj, _ in evidence.objects:
        if obj not in about and _own_id(obj) in own_ids:
            about.append(obj)
    return about


def _own_id(obj: dict[str, Any]) -> str | None:
    for key, value in obj.items():
        if (key == "id" or key.endswith(("_id", "Id"))) and isinstance(value, str | int):
            return f"{key}={value}"
    return None


def _referent_field(span: _Span, about: list[dict[str, Any]]) -> str | None:
    """For an unsupported span in a sentence about an output object that has a field of the
    span's kind (a money field for an amount, a date for a date): the problem message."""
    if span.kind not in ("amount", "date", "time"):
        return None
    for obj in reversed(about):
        for key, value in obj.items():
            words = set(_KEY_WORD.findall(str(key).casefold()))
            if span.kind == "amount" and not words & _MONEY_KEY_WORDS:
                continue
            converted = _field_value(span, value)
            if converted is not None:
                return _contradiction_message(span, str(key), converted, obj)
    return None


def _contradiction_message(span: _Span, key: str, value: Any, obj: dict[str, Any]) -> str:
    own = _own_id(obj)
    about = f"the tool output for {own.split('=', 1)[1]!r}" if own else "the earlier tool output"
    return (
        f"the assistant states {span.text!r}, but {about} gives {key!r} = "
        f"{_show_field(span, value)}, and nothing else supports {span.text!r}; report the "
        "value the tool returned"
    )


def _contradiction(
    text: str,
    sentence: tuple[int, int],
    span: _Span,
    evidence: Evidence,
    about: list[dict[str, Any]],
) -> str | None:
    """The problem message when the span contradicts a labelled output field, else None."""
    if span.kind not in ("amount", "percent", "date", "time"):
        return None
    window = _window(text, sentence, span)
    if not window:
        return None

    def fields(objects: Iterable[dict[str, Any]]) -> list[tuple[str, Any]]:
        found = []
        for obj in objects:
            for key, value in obj.items():
                converted = _field_value(span, value)
                if converted is not None and _key_matches(str(key), window):
                    found.append((str(key), converted))
        return found

    named = fields(about)
    every = named or fields(obj for obj, _ in evidence.objects)
    if not every or any(_same(span, value) for _, value in every):
        return None
    if named:
        if any(_derived_from(span, value, evidence) for _, value in named):
            return None
    elif _unsupported(text, span, evidence) is None:
        return None
    key, value = every[-1]
    shown = _show_field(span, value)
    return (
        f"the assistant states {span.text!r} for {key!r}, but the earlier tool output gives "
        f"{key!r} = {shown}; report the value the tool returned"
    )


def _show_field(span: _Span, value: Any) -> str:
    if span.kind == "date":
        month, day, year = value
        return date(year, month, day).isoformat()
    if span.kind == "time":
        return f"{value // 60:02d}:{value % 60:02d}"
    return _fmt(value)
