"""Mechanical R1: values the assistant uses must come from earlier in the dialogue.

Public API:
- `check_grounding(messages, tools) -> list[ProblemDict]`: code `ungrounded_value`.
- `stated_ids(text) -> list[str]`: the id-like tokens of a text, in order, without duplicates.

Evidence for message *i* is the text of every system, user and tool message before *i*
(tool outputs also contribute their parsed JSON values). The assistant's own turns and
calls are never evidence: the assistant cannot ground itself.

What is checked:
- every argument value of every call, recursively through objects and arrays;
- every id-like token the assistant states in its text content (see `stated_ids`): a token
  of at least 4 characters mixing letters and digits (`ORD-1001`, `A7X9K2`, `order_17`), a
  run of 5 or more digits (`48213`), or `#` followed by 3 or more digits (`#452`). Tokens like
  `3pm`, `2nd`, `10kg` are units or ordinals, not ids; dates and times are ignored.

How an argument value is matched (text is compared case-insensitively, whitespace collapsed):
- exempt: booleans and null; values the tool schema enumerates (`enum`/`const`, also inside
  `anyOf`/`oneOf`) or gives as the property's `default`; integers from -9 to 9; strings
  shorter than 3 characters;
- numbers: equal (by absolute value) to a number printed earlier (`42` matches "42", "42.0",
  "$42.00", "1,042" does not), or, up to 20, to a number word ("two");
- ISO dates and datetimes: the date must appear earlier in ISO form, as `3/14/2025`,
  `14.03.2025`, `March 14`, `14 March 2025`, `Mar 14th` and similar. The time of day is not
  checked. When a user turn speaks of a relative date ("tomorrow", "next Friday",
  "in 3 days"), date values are exempt: resolving them is left to the LLM judge (R1);
- phone-like strings (digits and separators, at least 7 digits): the same digit sequence
  appears earlier, allowing a missing or extra country-code prefix;
- other single-token strings (no whitespace): appear earlier as a whole token, so `ORD-12`
  is not grounded by `ORD-123`;
- multi-word strings are free text the assistant may phrase itself, so only their id-like
  tokens and their numbers of 2 or more digits are checked, except short Title Case strings
  (up to 4 words, e.g. a person's or place's name), whose every word must appear earlier.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gem_graph import strictjson
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.tools import tool_parameters
from gem_graph.checks.trajectory import (
    call_arguments,
    call_name,
    iter_tool_calls,
    message_text,
)

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_WORD_NUMBERS = {word: value for value, word in enumerate(_NUMBER_WORDS.split(" "))}
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b")
_NUMERIC_STRING = re.compile(r"^[-+]?\d+(?:\.\d+)?$")
_PHONE_STRING = re.compile(r"^\+?[\d\s().\-/]+$")
_PHONE_IN_TEXT = re.compile(r"\+?\d[\d\s().\-/]{5,}\d")
_ISO_VALUE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$")

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")
_SLASH_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])")
_DOT_DATE = re.compile(r"(?<!\d)(?<!\d\.)(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?!\.?\d)")
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD}\b(?:,?\s+(\d{{4}}))?")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+(\d{{4}}))?")
_RELATIVE_DATE = re.compile(
    r"\b(today|tonight|tomorrow|yesterday|weekend|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|(?:next|this|last|coming) (?:week|month|year)|day after|"
    r"end of (?:the )?(?:day|week|month)|in (?:\d+|a|an|one|two|three|four|five|six|seven|"
    r"eight|nine|ten) (?:days?|weeks?|months?))\b"
)

_TOKEN = re.compile(r"#?[^\W_]+(?:[-_][^\W_]+)*")
_DATE_OR_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?",
    re.IGNORECASE,
)
_UNIT_OR_ORDINAL = re.compile(
    r"^\d+(?:st|nd|rd|th|am|pm|h|hr|hrs|min|mins|s|sec|ms|d|wk|mo|yr|yrs|x|k|m|b|"
    r"kg|g|mg|lb|lbs|oz|km|cm|mm|mi|ft|in|ml|l|kb|mb|gb|tb|px|p|hz|khz|mhz|ghz|gbps|mbps|w|"
    r"kw|v|mah|gen)$",
    re.IGNORECASE,
)
_UNGROUNDED = "does not appear earlier in the dialogue (system prompt, user turns or earlier "
_UNGROUNDED += "tool outputs)"


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _is_id_like(token: str) -> bool:
    if token.startswith("#"):
        return token[1:].isdigit() and len(token) >= 4
    if token.isdigit():
        return len(token) >= 5
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return has_digit and has_alpha and len(token) >= 4 and not _UNIT_OR_ORDINAL.match(token)


def stated_ids(text: str) -> list[str]:
    """Id-like tokens in `text` (see the module docstring), in order, without duplicates."""
    if not isinstance(text, str):
        return []
    found: list[str] = []
    for match in _TOKEN.finditer(_DATE_OR_TIME.sub(" ", text)):
        token = match.group(0)
        if _is_id_like(token) and token not in found:
            found.append(token)
    return found


def _dates_in(text: str) -> set[tuple[int | None, int, int]]:
    """Dates written in `text` (already case-folded) as (year or None, month, day)."""
    found: set[tuple[int | None, int, int]] = set()

    def add(year: str | None, month: int, day: int) -> None:
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return
        value = int(year) if year else None
        if value is not None and value < 100:
            value += 2000
        found.add((value, month, day))
        found.add((None, month, day))

    for y, m, d in _ISO_DATE.findall(text):
        add(y, int(m), int(d))
    for pattern in (_SLASH_DATE, _DOT_DATE):
        for a, b, y in pattern.findall(text):
            add(y or None, int(a), int(b))  # month first (US) ...
            add(y or None, int(b), int(a))  # ... or day first: accept either reading
    for month, d, y in _MONTH_DAY.findall(text):
        add(y or None, _MONTHS[month], int(d))
    for d, month, y in _DAY_MONTH.findall(text):
        add(y or None, _MONTHS[month], int(d))
    return found


class _Evidence:
    """What the dialogue has said so far, outside the assistant's own turns."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._joined = ""
        self._numbers: set[float] = set()
        self._digit_runs: set[str] = set()
        self._dates: set[tuple[int | None, int, int]] = set()
        self.relative_dates = False

    def add_text(self, text: str, *, speaker: bool = False) -> None:
        """Add a text; `speaker` marks user text, whose relative dates exempt date values."""
        text = _norm(text)
        if not text:
            return
        self._texts.append(text)
        self._joined = ""
        for match in _NUMBER.findall(text):
            self._numbers.add(_key(float(match.replace(",", ""))))
        for word in _NUMBER_WORD.findall(text):
            self._numbers.add(_key(float(_WORD_NUMBERS[word])))
        for match in _PHONE_IN_TEXT.findall(text):
            digits = re.sub(r"\D", "", match)
            if len(digits) >= 7:
                self._digit_runs.add(digits)
        self._dates |= _dates_in(text)
        if speaker and _RELATIVE_DATE.search(text):
            self.relative_dates = True

    def add_tool_output(self, content: str) -> None:
        """Add a tool message: its raw text plus the strings and numbers of its JSON."""
        self.add_text(content)
        try:
            value = strictjson.loads(content)
        except strictjson.StrictJSONError:  # not JSON, or too deep/ambiguous to read
            return
        strings: list[str] = []
        _collect(value, strings, self._numbers)
        for text in strings:
            self.add_text(text)

    def has_text(self, value: str) -> bool:
        """True if `value` appears as a whole token sequence in an earlier text."""
        needle = _norm(value)
        if not needle:
            return True
        if not self._joined:
            self._joined = "\n\x00\n".join(self._texts)
        pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
        return re.search(pattern, self._joined) is not None

    def has_number(self, value: float) -> bool:
        return _key(value) in self._numbers

    def has_digits(self, digits: str) -> bool:
        return any(
            run == digits
            or (min(len(run), len(digits)) >= 7 and (run.endswith(digits) or digits.endswith(run)))
            for run in self._digit_runs
        )

    def has_date(self, year: int, month: int, day: int) -> bool:
        return (year, month, day) in self._dates or (None, month, day) in self._dates


def _key(number: float) -> float:
    return round(abs(number), 6)


def _collect(value: Any, strings: list[str], numbers: set[float]) -> None:
    """Gather the string keys/values and numbers of a parsed JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            strings.append(str(key))
            _collect(item, strings, numbers)
    elif isinstance(value, list):
        for item in value:
            _collect(item, strings, numbers)
    elif isinstance(value, str):
        strings.append(value)
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        numbers.add(_key(float(value)))


def _exempt_by_schema(value: Any, schema: Any) -> bool:
    """True when the schema enumerates `value` or gives it as the default."""
    if not isinstance(schema, dict):
        return False
    if "enum" in schema or "const" in schema:
        return True
    if "default" in schema and schema["default"] == value:
        return True
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for branch in branches:
                if isinstance(branch, dict) and (
                    value in _as_list(branch.get("enum")) or branch.get("const", ...) == value
                ):
                    return True
    return False


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _subschema(schema: Any, key: str | int) -> Any:
    if not isinstance(schema, dict):
        return None
    if isinstance(key, str):
        properties = schema.get("properties")
        return properties.get(key) if isinstance(properties, dict) else None
    items = schema.get("items")
    return items if isinstance(items, dict) else None


def _ungrounded_parts(value: Any, evidence: _Evidence) -> list[str]:
    """The parts of a scalar argument value that the evidence does not support."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return [repr(value)]
        if float(value).is_integer() and abs(value) <= 9:
            return []
        return [] if evidence.has_number(float(value)) else [_show(value)]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if len(_norm(text)) < 3 or evidence.has_text(text):
        return []
    if _NUMERIC_STRING.match(text):
        return [] if evidence.has_number(float(text)) else [text]
    iso = _ISO_VALUE.match(text)
    if iso:
        if evidence.relative_dates:
            return []
        year, month, day = (int(part) for part in iso.groups())
        return [] if evidence.has_date(year, month, day) else [text]
    if _PHONE_STRING.match(text) and len(re.sub(r"\D", "", text)) >= 7:
        return [] if evidence.has_digits(re.sub(r"\D", "", text)) else [text]
    words = text.split()
    if len(words) == 1:
        return [text]
    if len(words) <= 4 and all(word[:1].isupper() for word in words):
        missing = [word for word in words if not evidence.has_text(word.strip(".,;:!?"))]
        return [text] if missing else []
    return _ungrounded_tokens(text, evidence)


def _ungrounded_tokens(text: str, evidence: _Evidence) -> list[str]:
    """Free text: its stated ids and its numbers of 2 or more digits must be grounded."""
    missing = [token for token in stated_ids(text) if not evidence.has_text(token)]
    cleaned = _DATE_OR_TIME.sub(" ", text)
    for token in _TOKEN.finditer(cleaned):
        word = token.group(0)
        if (
            word.isdigit()
            and len(word) >= 2
            and word not in missing
            and not evidence.has_number(float(word))
        ):
            missing.append(word)
    for number in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", cleaned):
        if not evidence.has_number(float(number)) and number not in missing:
            missing.append(number)
    return missing


def _walk(value: Any, schema: Any, path: str) -> list[tuple[str, Any]]:
    """(path, scalar) pairs of an argument value that are not exempt by the schema."""
    if _exempt_by_schema(value, schema):
        return []
    if isinstance(value, dict):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            pairs.extend(_walk(item, _subschema(schema, str(key)), f"{path}.{key}"))
        return pairs
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            pairs.extend(_walk(item, _subschema(schema, index), f"{path}[{index}]"))
        return pairs
    return [(path, value)]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:79] + "…"


def check_grounding(messages: Any, tools: Any) -> list[ProblemDict]:
    """`ungrounded_value` problems for call arguments and ids the assistant states.

    Structural faults (bad roles, unparsable arguments) are skipped here; `check_trajectory`
    reports them.
    """
    if not isinstance(messages, list):
        return []
    schemas = tool_parameters(tools)
    calls_at: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for site in iter_tool_calls(messages):
        calls_at.setdefault(site.message_index, []).append((site.call_index, site.call))
    tool_names = {name.casefold() for name in schemas}
    problems: list[ProblemDict] = []
    evidence = _Evidence()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = message_text(message)
        if role in ("system", "user"):
            evidence.add_text(text, speaker=role == "user")
        elif role == "tool":
            evidence.add_tool_output(text)
        elif role == "assistant":
            problems.extend(_check_statement(text, evidence, tool_names, f"messages[{index}]"))
            for call_index, call in calls_at.get(index, []):
                where = f"messages[{index}].tool_calls[{call_index}]"
                problems.extend(_check_call(call, schemas, evidence, where))
    return problems


def _check_statement(
    text: str, evidence: _Evidence, tool_names: set[str], where: str
) -> list[ProblemDict]:
    problems: list[ProblemDict] = []
    for token in stated_ids(text):
        if token.casefold() in tool_names or evidence.has_text(token):
            continue
        problems.append(
            problem(
                "ungrounded_value",
                f"the assistant states {token!r}, which "
                f"{_UNGROUNDED}; never invent ids or references: look them "
                "up with a tool or ask the user",
                where,
            )
        )
    return problems


def _check_call(
    call: dict[str, Any], schemas: dict[str, dict[str, Any]], evidence: _Evidence, where: str
) -> list[ProblemDict]:
    name = call_name(call)
    raw = call_arguments(call)
    if not isinstance(name, str) or not isinstance(raw, str):
        return []
    try:
        arguments = strictjson.loads(raw)
    except strictjson.StrictJSONError:  # reported as malformed_arguments elsewhere
        return []
    if not isinstance(arguments, dict):
        return []
    schema = schemas.get(name, {})
    problems: list[ProblemDict] = []
    for key, value in arguments.items():
        for path, scalar in _walk(value, _subschema(schema, str(key)), str(key)):
            for part in _ungrounded_parts(scalar, evidence):
                whole = _show(scalar)
                shown = repr(whole) if isinstance(scalar, str) else whole
                detail = f"{path!r} = {shown}"
                if part != whole:
                    detail += f" contains {part!r}, which"
                problems.append(
                    problem(
                        "ungrounded_value",
                        f"call to {name!r}: argument "
                        f"{detail} {_UNGROUNDED}; ask the user or look it up "
                        "first",
                        where,
                    )
                )
    return problems
