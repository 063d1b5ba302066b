"""Is a span supported? Dispatch to the number, date and string checks."""

from __future__ import annotations

import re

from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence

from .dates import _date_problem, _nearest_time
from .numbers import _nearest_number, _number_supported
from .patterns import _OFFER, _Span, _ungrounded
from .strings import _nearest_string, _quote_problem


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
