"""Factual spans in assistant text: amounts, counts, dates, times, ids, quotes, names."""

from __future__ import annotations

import re
from collections.abc import Iterable

from gem_graph.checks import spans

from .patterns import (
    _COUNTED,
    _HASH_ID,
    _MONEY_AFTER,
    _MONEY_BEFORE,
    _NOT_ADJECTIVES,
    _NOT_NOUNS,
    _PERCENT,
    _PHONE,
    _QUOTE,
    _SHORT_ID,
    _TIMES_SIGN,
    _UNIT_WORDS,
    _Span,
)


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
