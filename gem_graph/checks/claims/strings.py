"""Strings: quotes, ids and Title Case names against earlier outputs."""

from __future__ import annotations

import difflib
import re

from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence, norm
from gem_graph.checks.problems import ProblemDict, problem

from .patterns import (
    _CAP_RUN,
    _COMMON_CAPS,
    _FREE_QUOTES,
    _HONORIFIC,
    _QUOTE_CUES,
    _Span,
    _ungrounded,
)


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
