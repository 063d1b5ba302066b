"""Contradictions: a span next to an output field's name with another value."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence, norm
from gem_graph.checks.grounding import stated_ids

from .dates import _resolve
from .numbers import _fmt, _Pool
from .patterns import _GENERIC_KEY_WORDS, _KEY_WORD, _MONEY_KEY_WORDS, _SHORT_ID, _Span
from .support import _unsupported


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
