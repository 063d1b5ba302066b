"""The Trajectory Synthesizer's target: one tagged document a model generates in one pass.

Sections, in this order, each opened and closed by a tag on its own line:

    <tools>            one tool per line, OpenAI function format (JSON)
    <policy>           the domain rules, raw text
    <read_only_tools>  one JSON array of tool names
    <schema_sql>       SQLite DDL, raw text
    <seed>             one line per table: {"table": [row, ...]}
    <tools_py>         the Python tool code, raw text
    <scenario>         one JSON object {"now": ..., "rows": {...}}
    <messages>         one OpenAI chat message per line (JSON)
    <user_goal>        optional: one JSON object, the user as a goal a simulator can play

Code and prose are raw, so nothing is JSON-escaped; data is JSON, one item per line, so a
truncated answer loses whole lines rather than leaving half an object. `parse_target` reads
`render_target`'s output back exactly, and never raises on anything else: every fault is a
problem (`invalid_output`, where = the section) a model can act on.
"""

from __future__ import annotations

import json
import re
from typing import Any, NotRequired, TypedDict

from gem_graph.checks.problems import ProblemDict, problem


class TargetEnvironment(TypedDict):
    """The executable part of a target: everything `make_environment` needs but the tools."""

    schema_sql: str
    seed: dict[str, list[dict[str, Any]]]
    tools_py: str
    policy: str
    read_only_tools: list[str]


class SynthTarget(TypedDict):
    """What one synthesizer generation holds: tools, environment, scenario, dialogue."""

    tools: list[dict[str, Any]]
    environment: TargetEnvironment
    scenario: dict[str, Any]
    messages: list[dict[str, Any]]
    user_goal: NotRequired[dict[str, Any] | None]
    """`persona`, `wants`, `known_facts`, `accepts`, `refuses` (`schemas.UserGoalDraft`)."""


SECTIONS = (
    "tools",
    "policy",
    "read_only_tools",
    "schema_sql",
    "seed",
    "tools_py",
    "scenario",
    "messages",
)
OPTIONAL_SECTIONS = ("user_goal",)
"""Sections after the required ones that an answer may leave out."""
RAW_SECTIONS = frozenset({"policy", "schema_sql", "tools_py"})
_ALL_SECTIONS = SECTIONS + OPTIONAL_SECTIONS
_OPEN = re.compile(r"^[ \t]*<(" + "|".join(_ALL_SECTIONS) + r")>", re.MULTILINE)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_MAX_SNIPPET = 120


class TargetFormatError(ValueError):
    """A value cannot be rendered so that it reads back exactly (e.g. code holding a tag)."""


# ---- rendering ----------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _section(name: str, content: str) -> str:
    return f"<{name}>\n{content}\n</{name}>"


def _check_raw(name: str, text: str) -> None:
    found = _OPEN.search(text)
    if found:
        raise TargetFormatError(
            f"{name} has a line starting with the section tag <{found.group(1)}>, which "
            "would end the section early"
        )


def render_target(target: SynthTarget) -> str:
    """The tagged document for `target`; raises `TargetFormatError` if it could not read back."""
    env = target["environment"]
    for name in RAW_SECTIONS:
        _check_raw(name, str(env[name]))  # type: ignore[literal-required]
    parts = [
        _section("tools", "\n".join(_json(t) for t in target["tools"])),
        _section("policy", env["policy"]),
        _section("read_only_tools", _json(list(env["read_only_tools"]))),
        _section("schema_sql", env["schema_sql"]),
        _section("seed", "\n".join(_json({table: rows}) for table, rows in env["seed"].items())),
        _section("tools_py", env["tools_py"]),
        _section(
            "scenario",
            _json({"now": target["scenario"].get("now"), "rows": target["scenario"].get("rows")}),
        ),
        _section("messages", "\n".join(_json(m) for m in target["messages"])),
    ]
    if target.get("user_goal"):
        parts.append(_section("user_goal", _json(target["user_goal"])))
    return "\n".join(parts) + "\n"


def target_from_parts(
    *,
    tools: list[dict[str, Any]],
    schema_sql: str,
    seed: dict[str, list[dict[str, Any]]],
    tools_py: str,
    policy: str,
    read_only_tools: list[str],
    scenario: dict[str, Any] | None,
    messages: list[dict[str, Any]],
    user_goal: dict[str, Any] | None = None,
) -> SynthTarget:
    """Assemble a target from a record's pieces and its environment's pieces."""
    scenario = scenario or {}
    target: SynthTarget = {
        "tools": list(tools),
        "environment": {
            "schema_sql": schema_sql,
            "seed": dict(seed),
            "tools_py": tools_py,
            "policy": policy,
            "read_only_tools": list(read_only_tools),
        },
        "scenario": {"now": scenario.get("now"), "rows": scenario.get("rows") or {}},
        "messages": list(messages),
    }
    if user_goal:
        target["user_goal"] = dict(user_goal)
    return target


# ---- parsing ------------------------------------------------------------------------------


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_SNIPPET else text[:_MAX_SNIPPET] + "…"


def _loads(text: str) -> tuple[Any, str | None]:
    """`json.loads` that reports instead of raising (bad syntax, absurd nesting)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} at column {exc.colno}"
    except (ValueError, RecursionError) as exc:
        return None, type(exc).__name__


def _bad(where: str, message: str) -> ProblemDict:
    return problem("invalid_output", message, where)


def _split_sections(text: str) -> tuple[dict[str, str], list[ProblemDict]]:
    """The raw content of every section, by name; missing or unclosed ones are problems."""
    starts: dict[str, tuple[int, int]] = {}
    for match in _OPEN.finditer(text):
        starts.setdefault(match.group(1), (match.start(), match.end()))
    problems: list[ProblemDict] = []
    contents: dict[str, str] = {}
    for name in _ALL_SECTIONS:
        if name not in starts:
            if name in OPTIONAL_SECTIONS:
                continue
            problems.append(
                _bad(
                    name,
                    f"the section <{name}> is missing: the answer needs every section "
                    f"({', '.join(f'<{s}>' for s in SECTIONS)}), in that order, each closed "
                    f"by its </tag> on its own line",
                )
            )
            continue
        open_at, body_at = starts[name]
        later = [s for s, _ in starts.values() if s > open_at]
        bound = min(later) if later else len(text)
        close = text.rfind(f"</{name}>", body_at, bound)
        if close < 0:
            problems.append(
                _bad(
                    name,
                    f"the section <{name}> is not closed by </{name}> (was the answer cut "
                    "off? keep it shorter)",
                )
            )
            continue
        raw = text[body_at:close]
        if raw.startswith("\r\n"):
            raw = raw[2:]
        elif raw.startswith("\n"):
            raw = raw[1:]
        if raw.endswith("\r\n"):
            raw = raw[:-2]
        elif raw.endswith("\n"):
            raw = raw[:-1]
        contents[name] = raw
    order = [name for name in _ALL_SECTIONS if name in starts]
    if order != sorted(order, key=lambda n: starts[n][0]):
        problems.append(
            _bad(
                "answer",
                "the sections are out of order; write them as "
                + ", ".join(f"<{s}>" for s in SECTIONS),
            )
        )
    return contents, problems


def _json_lines(name: str, content: str, what: str) -> tuple[list[Any], list[ProblemDict]]:
    items: list[Any] = []
    problems: list[ProblemDict] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        value, error = _loads(line)
        if error is not None:
            problems.append(
                _bad(
                    name,
                    f"line {number} is not one complete JSON {what} ({error}): "
                    f"{_snippet(line)!r}; write exactly one JSON {what} per line",
                )
            )
            continue
        if not isinstance(value, dict):
            problems.append(
                _bad(name, f"line {number} must be a JSON object, got {type(value).__name__}")
            )
            continue
        items.append(value)
    return items, problems


def _one_json(name: str, content: str) -> tuple[Any, list[ProblemDict]]:
    value, error = _loads(content)
    if error is not None:
        return None, [
            _bad(name, f"<{name}> must hold one JSON value ({error}): {_snippet(content)!r}")
        ]
    return value, []


def _parse_seed(content: str) -> tuple[dict[str, list[dict[str, Any]]], list[ProblemDict]]:
    lines, problems = _json_lines("seed", content, 'object {"table": [row, ...]}')
    seed: dict[str, list[dict[str, Any]]] = {}
    for item in lines:
        for table, rows in item.items():
            if table in seed:
                problems.append(_bad("seed", f"table {table!r} appears on more than one line"))
            elif not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                problems.append(_bad("seed", f"table {table!r} must map to a list of row objects"))
            else:
                seed[table] = rows
    return seed, problems


def _parse_scenario(content: str) -> tuple[dict[str, Any], list[ProblemDict]]:
    value, problems = _one_json("scenario", content)
    if problems:
        return {}, problems
    if not isinstance(value, dict) or set(value) - {"now", "rows"}:
        return {}, [_bad("scenario", 'write one JSON object {"now": ..., "rows": {...}}')]
    now, rows = value.get("now"), value.get("rows", {})
    if now is not None and not isinstance(now, str):
        problems.append(_bad("scenario", "now must be an ISO-8601 datetime string or null"))
    if not isinstance(rows, dict):
        problems.append(_bad("scenario", 'rows must be an object {"table": [row, ...]}'))
    return {"now": now, "rows": rows}, problems


def _parse_read_only(content: str) -> tuple[list[str], list[ProblemDict]]:
    value, problems = _one_json("read_only_tools", content)
    if problems:
        return [], problems
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [], [_bad("read_only_tools", "write one JSON array of tool names")]
    return value, []


def _parse_messages(content: str) -> tuple[list[dict[str, Any]], list[ProblemDict]]:
    messages, problems = _json_lines("messages", content, "message object")
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            problems.append(_bad("messages", f"message {index} has no role"))
    if not messages and not problems:
        problems.append(_bad("messages", "the dialogue is empty"))
    return messages, problems


def _parse_user_goal(content: str | None) -> tuple[dict[str, Any] | None, list[ProblemDict]]:
    """The optional user goal: None when the section is absent, else a checked object."""
    from pydantic import ValidationError

    from gem_graph.schemas import UserGoalDraft

    if content is None:
        return None, []
    value, problems = _one_json("user_goal", content)
    if problems:
        return None, problems
    try:
        return UserGoalDraft.model_validate(value).model_dump(), []
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "object"
        return None, [
            _bad(
                "user_goal",
                f"write one JSON object {{persona, wants, known_facts, accepts, "
                f"refuses}}: {where}: {first['msg']}",
            )
        ]


def parse_target(text: Any) -> tuple[SynthTarget | None, list[ProblemDict]]:
    """Read a tagged document back: `(target, [])`, or `(None, problems)`; never raises."""
    if not isinstance(text, str):
        return None, [_bad("answer", f"expected the answer as text, got {type(text).__name__}")]
    text = _THINK.sub("", text)
    contents, problems = _split_sections(text)
    if problems:
        return None, problems
    tools, found = _json_lines("tools", contents["tools"], "tool object")
    problems += found
    if not tools and not found:
        problems.append(_bad("tools", "no tools: write one tool per line"))
    read_only, found = _parse_read_only(contents["read_only_tools"])
    problems += found
    seed, found = _parse_seed(contents["seed"])
    problems += found
    scenario, found = _parse_scenario(contents["scenario"])
    problems += found
    messages, found = _parse_messages(contents["messages"])
    problems += found
    user_goal, found = _parse_user_goal(contents.get("user_goal"))
    problems += found
    if problems:
        return None, problems
    target: SynthTarget = {
        "tools": tools,
        "environment": {
            "schema_sql": contents["schema_sql"],
            "seed": seed,
            "tools_py": contents["tools_py"],
            "policy": contents["policy"],
            "read_only_tools": read_only,
        },
        "scenario": scenario,
        "messages": messages,
    }
    if user_goal is not None:
        target["user_goal"] = user_goal
    return target, []
