"""Source faithfulness: every tool, workflow step and rule of a blueprint quotes its text.

Public API:
- `find_quote(text, quote) -> (start, end) | None`: character offsets of the first
  occurrence of `quote` in `text` (`text[start:end]` is the passage), or None.
- `check_quotes(draft, text) -> list[ProblemDict]`: code `unsupported_by_source` for an
  `ExtractOutput` dump whose tools, steps or rules lack a quote, or quote words the text
  does not contain. With `text` None only the presence and length of quotes are checked.
- `source_spans(blueprint, text) -> Spans | None`: the record's `provenance.spans`, from the
  `quotes` the extract stage keeps in the graph's blueprint; None without quotes.

Matching is case-insensitive with whitespace runs collapsed; typographic apostrophes,
quotation marks and dashes count as their plain forms. A quote must start and end on word
boundaries, hold at least `MIN_QUOTE_WORDS` words and at most `MAX_QUOTE_CHARS` characters,
so that neither a fragment of a word nor the whole document passes as support.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.contracts.record import RuleSpan, Spans, StepSpan

MIN_QUOTE_WORDS = 2
MAX_QUOTE_CHARS = 400
_CODE = "unsupported_by_source"
_PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
    }
)


@functools.lru_cache(maxsize=256)
def _normalised(text: str) -> tuple[str, tuple[int, ...]]:
    """`text` case-folded with whitespace runs collapsed, and each character's source index.

    Cached: one source text is searched for every quote of its blueprint.
    """
    chars: list[str] = []
    origin: list[int] = []
    gap = False
    for index, char in enumerate(text):
        if char.isspace():
            gap = bool(chars)
            continue
        if gap:
            chars.append(" ")
            origin.append(index)
            gap = False
        for folded in char.translate(_PLAIN).casefold():
            chars.append(folded)
            origin.append(index)
    return "".join(chars), tuple(origin)


def find_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Offsets `[start, end)` of `quote` in `text`, matched as the module describes."""
    if not isinstance(text, str) or not isinstance(quote, str):
        return None
    needle, _ = _normalised(quote)
    if not needle:
        return None
    haystack, origin = _normalised(text)
    before = r"(?<!\w)" if re.match(r"\w", needle) else ""
    after = r"(?!\w)" if re.search(r"\w$", needle) else ""
    match = re.search(before + re.escape(needle) + after, haystack)
    if match is None:
        return None
    return origin[match.start()], origin[match.end() - 1] + 1


def _label(kind: str, name: Any) -> str:
    return f"{kind} {name!r}" if isinstance(name, str) and name else kind


def _quote_problem(quote: Any, label: str, where: str, text: str | None) -> ProblemDict | None:
    """Why `quote` does not support the item, or None when it does."""
    if not isinstance(quote, str) or not quote.strip():
        return problem(
            _CODE,
            f"{label} has no quote: copy the words of the text it rests on, verbatim, into "
            "`quote`; drop it if the text does not support it",
            where,
        )
    if len(quote.split()) < MIN_QUOTE_WORDS or len(quote) > MAX_QUOTE_CHARS:
        return problem(
            _CODE,
            f"{label}: quote the passage it rests on, {MIN_QUOTE_WORDS} words to "
            f"{MAX_QUOTE_CHARS} characters (a phrase or a sentence or two), not "
            f"{'a single word' if len(quote.split()) < MIN_QUOTE_WORDS else 'a long stretch'}",
            where,
        )
    if text is not None and find_quote(text, quote) is None:
        shown = quote if len(quote) <= 120 else quote[:119] + "…"
        return problem(
            _CODE,
            f"{label}: the quote {shown!r} does not occur in the text; copy the words exactly "
            "as written (only case and spacing may differ), or drop what the text does not "
            "support",
            where,
        )
    return None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_quotes(draft: Any, text: str | None) -> list[ProblemDict]:
    """`unsupported_by_source` for each tool, step and rule of `draft` without a valid quote."""
    if not isinstance(draft, dict):
        return []
    found: list[ProblemDict | None] = []
    for index, tool in enumerate(_items(draft.get("tools"))):
        if isinstance(tool, dict):
            label = _label("tool", tool.get("name"))
            found.append(_quote_problem(tool.get("quote"), label, f"tools[{index}].quote", text))
    for w_index, workflow in enumerate(_items(draft.get("workflows"))):
        if not isinstance(workflow, dict):
            continue
        name = workflow.get("name")
        for s_index, step in enumerate(_items(workflow.get("steps"))):
            where = f"workflows[{w_index}].steps[{s_index}]"
            label = f"{_label('workflow', name)} step {s_index}"
            if isinstance(step, str):
                found.append(
                    problem(
                        _CODE,
                        f"{label} is plain text; give each step as an object "
                        '{"step", "quote"} with the words of the text it comes from',
                        where,
                    )
                )
            elif isinstance(step, dict):
                found.append(_quote_problem(step.get("quote"), label, f"{where}.quote", text))
    for index, rule in enumerate(_items(draft.get("rules"))):
        where = f"rules[{index}]"
        if isinstance(rule, str):
            found.append(
                problem(
                    _CODE,
                    f"rule {index} ({rule[:60]!r}) is plain text; give each rule as an object "
                    '{"rule", "quote"} with the words of the text it rests on',
                    where,
                )
            )
        elif isinstance(rule, dict):
            label = f"rule {index}"
            found.append(_quote_problem(rule.get("quote"), label, f"{where}.quote", text))
    return [p for p in found if p is not None]


def _span(text: str, quote: Any) -> list[int] | None:
    found = find_quote(text, quote) if isinstance(quote, str) else None
    return list(found) if found else None


def source_spans(blueprint: Any, text: str) -> Spans | None:
    """`{"tools": {name: [start, end]}, "steps": [{"workflow", "step", "span"}], "rules":
    [{"rule", "span"}]}` for a graph blueprint with `quotes`; a span is None if not found."""
    if not isinstance(blueprint, dict) or not isinstance(blueprint.get("quotes"), dict):
        return None
    quotes = blueprint["quotes"]
    tools = quotes.get("tools") if isinstance(quotes.get("tools"), dict) else {}
    step_quotes = _items(quotes.get("steps"))
    rule_quotes = _items(quotes.get("rules"))
    steps: list[StepSpan] = []
    for w_index, workflow in enumerate(_items(blueprint.get("workflows"))):
        quoted = _items(step_quotes[w_index]) if w_index < len(step_quotes) else []
        for s_index, step in enumerate(_items(workflow.get("steps"))):
            quote = quoted[s_index] if s_index < len(quoted) else None
            steps.append(
                {"workflow": workflow.get("name"), "step": step, "span": _span(text, quote)}
            )
    rules: list[RuleSpan] = [
        {"rule": rule, "span": _span(text, rule_quotes[i] if i < len(rule_quotes) else None)}
        for i, rule in enumerate(_items(blueprint.get("rules")))
    ]
    return {
        "tools": {name: _span(text, quote) for name, quote in tools.items()},
        "steps": steps,
        "rules": rules,
    }
