"""The claims check's entry point: read each assistant text, check each span."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gem_graph import strictjson
from gem_graph.checks import spans
from gem_graph.checks.evidence import Evidence
from gem_graph.checks.messages import message_text
from gem_graph.checks.outcomes import check_outcomes
from gem_graph.checks.problems import ProblemDict, problem

from .contradictions import _contradiction, _referent_field, _referents
from .extract import _extract
from .patterns import _CATEGORY_KEYS, _KEY_WORD
from .strings import _check_cap_names
from .support import _unsupported


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
