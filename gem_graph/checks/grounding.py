"""Mechanical R1: values the assistant uses must come from earlier in the dialogue.

Public API:
- `check_grounding(messages, tools, *, scenario_now=None) -> list[ProblemDict]`: code
  `ungrounded_value`. `scenario_now` is the record's clock (ISO 8601; the runtime default
  2025-01-01T09:00:00+00:00 when None); relative dates are resolved against it.
- `stated_ids(text) -> list[str]`: the id-like tokens of a text, in order, without duplicates.

Evidence for message *i* is the text of every system, user and tool message before *i*
(tool outputs also contribute their parsed JSON values). The assistant's own turns and
calls are never evidence: the assistant cannot ground itself.

What is checked:
- every argument value of every call, recursively through objects and arrays;
- every id-like token the assistant states in its text content (see `stated_ids`): a token
  of at least 4 characters mixing letters and digits (`ORD-1001`, `A7X9K2`, `order_17`), a
  run of 5 or more digits (`48213`), or `#` followed by 3 or more digits (`#452`). Tokens like
  `3pm`, `2nd`, `10kg` are units or ordinals, not ids; dates and times are ignored. (What the
  assistant says beyond ids is the claims check's job, `checks/claims.py`.)

Exempt argument values, and only these:
- booleans and null; values the tool schema enumerates (`enum`/`const`, also inside
  `anyOf`/`oneOf`) or gives as the property's `default`; the empty string;
- counts that identify nothing: a non-negative integer (or numeric string) of a paging
  property (`limit`, `page`, `offset`, `page_size`, `per_page`, `max_results`, `top_k`), or one
  up to 9 of a quantity property: its name has a word like quantity, qty, count, nights,
  guests, people, adults, children, seats, tickets, rooms, units (or is `party_size`), or
  starts with `num_` or `number_of`, or its description says "number of", "how many",
  "quantity" or "count".
  A property whose name is `id`, `code`, `number`, `ref`, `sku` or ends in `_id`, `Id`,
  `_code`, `_number`, `_no`, `_ref` is an identifier and never exempt.
Everything else is checked at any length: a 2-character id or a small integer is no longer
free.

How a value is matched (text is compared case-insensitively, whitespace collapsed):
- numbers: equal, sign included, to a number that stands alone earlier (`42` matches "42",
  "42.0", "$42.00", "#42"; `-5` is not matched by "5"; "1,042", "ORD-1042", "3-pack" and
  dates match nothing), to a JSON number of a tool output, to the year of a date said
  earlier, or to a number word ("twelve", "fifty", "twenty-five", "a dozen");
- ISO dates and datetimes: the date must appear earlier, in ISO form or as `3/14/2025`,
  `14.03.2025`, `March 14`, `14 March 2025`, `Mar 14th` and similar. A date written without a
  year grounds only the scenario's year, a year said elsewhere, or the occurrence nearest
  the scenario clock. Relative dates in user turns ("today", "tomorrow", "next Friday",
  "in 3 days", "next week", "end of the month", ...) are resolved against the scenario clock
  and ground what they resolve to; a said date (or today) plus or minus a said number of
  days ("for 3 nights", "14 days") is grounded too. The time of day of a datetime, unless
  it is midnight, must appear earlier (`14:00`, `2pm`, a time inside an earlier ISO
  datetime, or "at 2" / "noon" in a user turn) or be such a time plus or minus a said
  duration;
- time strings (`14:00`, `2:30 pm`): the same rule as the time of a datetime;
- phone-like strings (digits and separators, at least 7 digits): the same digit sequence
  appears earlier, allowing a missing or extra country-code prefix;
- other single-token strings, however short: appear earlier as a whole token, so `ORD-12`
  is not grounded by `ORD-123` and `1001` not by `ORD-1001`;
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
from gem_graph.checks.evidence import Evidence
from gem_graph.checks.messages import (
    call_arguments,
    call_name,
    iter_tool_calls,
    message_text,
)
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.spans import UNIT_OR_ORDINAL, scenario_clock, time_spans, wordset
from gem_graph.checks.tools import tool_parameters

_NUMERIC_STRING = re.compile(r"^[-+]?\d+(?:\.\d+)?$")
_PHONE_STRING = re.compile(r"^\+?[\d\s().\-/]+$")
_ISO_VALUE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_TIME_VALUE = re.compile(r"^\d{1,2}(?::\d{2}(?::\d{2})?)?\s?(?:[ap]\.?m\.?)?$", re.IGNORECASE)
_TOKEN = re.compile(r"#?[^\W_]+(?:[-_][^\W_]+)*")
_DATE_OR_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?",
    re.IGNORECASE,
)
_ID_NAME = re.compile(
    r"(?:^(?:id|code|number|ref|sku)$|_(?:id|code|number|no|ref|sku)$|(?:Id|ID|Code|Number|Ref)$)"
)
_COUNT_NAMES = frozenset({"party_size", "group_size", "headcount", "head_count"})
_PAGING_NAMES = frozenset(
    {"limit", "page", "offset", "page_size", "per_page", "max_results", "top_k", "max_items"}
)
_QUANTITY_WORDS = wordset(
    "quantity quantities qty count nights guests people persons adults children "
    "kids seats tickets rooms beds units copies passengers travelers travellers "
    "attendees participants pieces"
)
_QUANTITY_TEXT = re.compile(r"\b(?:number of (?!the\b)|how many|quantity|count\b)", re.IGNORECASE)
_UNGROUNDED = "does not appear earlier in the dialogue (system prompt, user turns or earlier "
_UNGROUNDED += "tool outputs)"


def _words(name: str) -> list[str]:
    """The words of a property name: `partySize` and `party_size` give ["party", "size"]."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).casefold().split("_")


def _count_limit(name: str | None, schema: Any) -> float:
    """The largest integer a property may take without grounding: it is a count that
    identifies nothing (see the module docstring). 0 means no exemption."""
    if not name or _ID_NAME.search(name):
        return 0
    snake = "_".join(_words(name))
    if snake in _PAGING_NAMES:
        return math.inf
    description = schema.get("description") if isinstance(schema, dict) else None
    if (
        _QUANTITY_WORDS.intersection(_words(name))
        or snake in _COUNT_NAMES
        or snake.startswith(("num_", "number_of_"))
        or (isinstance(description, str) and _QUANTITY_TEXT.search(description))
    ):
        return 9
    return 0


def _is_id_like(token: str) -> bool:
    if token.startswith("#"):
        return token[1:].isdigit() and len(token) >= 4
    if token.isdigit():
        return len(token) >= 5
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return has_digit and has_alpha and len(token) >= 4 and not UNIT_OR_ORDINAL.match(token)


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


def _ungrounded_parts(
    value: Any, evidence: Evidence, name: str | None = None, schema: Any = None
) -> list[str]:
    """The parts of a scalar argument value (of property `name`) that the evidence does not
    support."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int) and abs(value) >= 10**15:  # too big for a float: an id
        return [] if evidence.has_text(str(value)) else [_show(value)]
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return [repr(value)]
        if float(value).is_integer() and 0 <= value <= _count_limit(name, schema):
            return []
        if evidence.has_number(float(value)) or value in evidence.years:
            return []
        return [_show(value)]
    if not isinstance(value, str):
        return []
    text = value.strip()
    if not text:
        return []
    if _NUMERIC_STRING.match(text):
        number = float(text)
        if number.is_integer() and 0 <= number <= _count_limit(name, schema):
            return []
        return [] if evidence.has_number(number) else [text]
    iso = _ISO_VALUE.match(text)
    if iso:
        return [] if _grounded_datetime(iso, evidence) else [text]
    if _TIME_VALUE.match(text) and (spans := time_spans(text)):
        return [] if evidence.find_time(spans[0].minutes) else [text]
    if evidence.has_text(text):
        return []
    if _PHONE_STRING.match(text) and len(re.sub(r"\D", "", text)) >= 7:
        return [] if evidence.has_digits(re.sub(r"\D", "", text)) else [text]
    words = text.split()
    if len(words) == 1:
        return [text]
    if len(words) <= 4 and all(word[:1].isupper() for word in words):
        missing = [word for word in words if not evidence.has_text(word.strip(".,;:!?"))]
        return [text] if missing else []
    return _ungrounded_tokens(text, evidence)


def _grounded_datetime(iso: re.Match[str], evidence: Evidence) -> bool:
    """The date must be said or derivable; the time of day too, unless it is midnight."""
    year, month, day = (int(part) for part in iso.groups()[:3])
    if evidence.find_date(year, month, day) is None:
        return False
    if iso.group(4) is None:
        return True
    minutes = int(iso.group(4)) * 60 + int(iso.group(5))
    return minutes == 0 or evidence.find_time(minutes) is not None


def _ungrounded_tokens(text: str, evidence: Evidence) -> list[str]:
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


def _walk(value: Any, schema: Any, path: str, name: str | None) -> list[tuple[str, Any, Any, Any]]:
    """(path, scalar, its property name, its schema) of an argument value, skipping what the
    schema enumerates."""
    if _exempt_by_schema(value, schema):
        return []
    if isinstance(value, dict):
        pairs: list[tuple[str, Any, Any, Any]] = []
        for key, item in value.items():
            sub = _subschema(schema, str(key))
            pairs.extend(_walk(item, sub, f"{path}.{key}", str(key)))
        return pairs
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            pairs.extend(_walk(item, _subschema(schema, index), f"{path}[{index}]", name))
        return pairs
    return [(path, value, name, schema)]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:79] + "…"


def check_grounding(
    messages: Any, tools: Any, *, scenario_now: str | None = None
) -> list[ProblemDict]:
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
    evidence = Evidence(scenario_clock(scenario_now))
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = message_text(message)
        where = f"messages[{index}]"
        if role in ("system", "user"):
            evidence.add_text(text, where, user=role == "user")
        elif role == "tool":
            evidence.add_tool_output(text, where)
        elif role == "assistant":
            problems.extend(_check_statement(text, evidence, tool_names, where))
            for call_index, call in calls_at.get(index, []):
                where = f"messages[{index}].tool_calls[{call_index}]"
                problems.extend(_check_call(call, schemas, evidence, where))
    return problems


def _check_statement(
    text: str, evidence: Evidence, tool_names: set[str], where: str
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
    call: dict[str, Any], schemas: dict[str, dict[str, Any]], evidence: Evidence, where: str
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
        sub = _subschema(schema, str(key))
        for path, scalar, prop, prop_schema in _walk(value, sub, str(key), str(key)):
            for part in _ungrounded_parts(scalar, evidence, prop, prop_schema):
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
