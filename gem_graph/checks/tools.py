"""Checks on tool definitions, and the conversion of model-drafted tools to OpenAI format.

Public functions:
- `check_tools(tools) -> list[ProblemDict]`: every tool is a valid OpenAI function definition
  whose parameters are a valid JSON Schema object callable as `fn(db, **arguments)`.
- `check_tool(tool, where="tools[0]") -> list[ProblemDict]`: the same rules for one tool,
  without the uniqueness check across tools.
- `tools_from_drafts(drafts) -> tuple[list[dict], list[ProblemDict]]`: the model's `ToolDraft`
  dicts (with `parameters_json` as text) as OpenAI tools; drafts that cannot be converted are
  left out and reported.
- `read_only_names(drafts) -> list[str]`: names of the drafts marked `read_only`.
- `tool_parameters(tools) -> dict[str, dict]`: tool name → parameters schema, skipping
  malformed entries (used by the call checks).
- `schema_problems(schema, label, where) -> list[ProblemDict]`: the rules for one `parameters`.
- `convert_draft(draft, where) -> tuple[dict | None, list[ProblemDict]]`: one draft.

Every problem here has the code `invalid_tool_schema`.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

from gem_graph.checks.metaschema import metaschema_error
from gem_graph.checks.problems import ProblemDict, problem

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""Tool names: short snake_case, as OpenAI function names and Python identifiers."""

_ARGUMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ARGUMENTS = frozenset({"db"})
"""`db` is the connection the runtime passes first; an argument of that name would clash."""
_TYPE_KEYWORDS = ("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref")
_CODE = "invalid_tool_schema"


def _label(tool: Any) -> str:
    """`tool 'name'` when the tool has a usable name, else `tool`."""
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return f"tool {function['name']!r}"
        if isinstance(tool.get("name"), str):
            return f"tool {tool['name']!r}"
    return "tool"


def schema_problems(schema: Any, label: str, where: str) -> list[ProblemDict]:
    """Problems with one tool's `parameters` schema (meta-validation plus our call rules)."""
    if not isinstance(schema, dict):
        return [
            problem(
                _CODE,
                f"{label}: parameters must be a JSON Schema object, got {type(schema).__name__}",
                where,
            )
        ]
    problems: list[ProblemDict] = []
    error = metaschema_error(schema)
    if error is not None:
        problems.append(problem(_CODE, f"{label}: parameters is {_short(error)}", where))
    if schema.get("type") != "object":
        problems.append(
            problem(
                _CODE,
                f'{label}: parameters must have "type": "object", got {schema.get("type")!r}',
                where,
            )
        )
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        problems.append(
            problem(
                _CODE,
                f'{label}: parameters must have a "properties" object '
                "(use {} for a tool without arguments)",
                where,
            )
        )
        properties = {}
    for name, spec in properties.items():
        at = f"{where}.properties.{name}"
        if not _ARGUMENT_NAME.match(name) or keyword.iskeyword(name):
            problems.append(
                problem(
                    _CODE,
                    f"{label}: property name {name!r} is not a valid "
                    "Python identifier; tools are called as fn(db, **arguments)",
                    at,
                )
            )
        elif name in _RESERVED_ARGUMENTS:
            problems.append(
                problem(
                    _CODE,
                    f"{label}: property name {name!r} is reserved for "
                    "the database connection; rename it",
                    at,
                )
            )
        if not isinstance(spec, dict):
            problems.append(
                problem(_CODE, f"{label}: property {name!r} must be a schema object", at)
            )
        elif not any(key in spec for key in _TYPE_KEYWORDS):
            problems.append(
                problem(
                    _CODE,
                    f'{label}: property {name!r} has no "type" (or '
                    '"enum"/"anyOf"); give every argument a type',
                    at,
                )
            )
    required = schema.get("required", [])
    if not isinstance(required, list):
        problems.append(
            problem(_CODE, f'{label}: "required" must be a list of property names', where)
        )
    else:
        for name in required:
            if not isinstance(name, str) or name not in properties:
                problems.append(
                    problem(
                        _CODE,
                        f'{label}: required argument {name!r} is not declared in "properties"',
                        f"{where}.required",
                    )
                )
    return problems


def check_tool(tool: Any, where: str = "tools[0]") -> list[ProblemDict]:
    """Problems with one tool in OpenAI function format."""
    if not isinstance(tool, dict):
        return [problem(_CODE, f"a tool must be an object, got {type(tool).__name__}", where)]
    label = _label(tool)
    problems: list[ProblemDict] = []
    if tool.get("type") != "function":
        problems.append(
            problem(_CODE, f'{label}: "type" must be "function", got {tool.get("type")!r}', where)
        )
    function = tool.get("function")
    if not isinstance(function, dict):
        problems.append(
            problem(
                _CODE,
                f'{label}: "function" must be an object with name, description and parameters',
                where,
            )
        )
        return problems
    name = function.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(
            problem(
                _CODE,
                f"{label}: name {name!r} must be snake_case matching {NAME_PATTERN.pattern}",
                f"{where}.function.name",
            )
        )
    description = function.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(
            problem(
                _CODE,
                f"{label}: description must be a non-empty string "
                "saying what the tool does and returns",
                f"{where}.function.description",
            )
        )
    problems.extend(
        schema_problems(function.get("parameters"), label, f"{where}.function.parameters")
    )
    return problems


def check_tools(tools: Any) -> list[ProblemDict]:
    """Problems with a tool list in OpenAI function format, including duplicate names."""
    if not isinstance(tools, list):
        return [problem(_CODE, f"tools must be a list, got {type(tools).__name__}", "tools")]
    problems: list[ProblemDict] = []
    seen: dict[str, int] = {}
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        problems.extend(check_tool(tool, where))
        name = _tool_name(tool)
        if name is None:
            continue
        if name in seen:
            problems.append(
                problem(
                    _CODE,
                    f"tool name {name!r} is defined twice "
                    f"(also tools[{seen[name]}]); names must be unique",
                    where,
                )
            )
        else:
            seen[name] = index
    return problems


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        name = tool["function"].get("name")
        if isinstance(name, str):
            return name
    return None


def tool_parameters(tools: Any) -> dict[str, dict[str, Any]]:
    """Map each well-formed tool's name to its parameters schema (first definition wins).

    A tool whose parameters are not an object maps to `{}`, so calls to it are still known.
    """
    found: dict[str, dict[str, Any]] = {}
    if not isinstance(tools, list):
        return found
    for tool in tools:
        name = _tool_name(tool)
        if name is None or name in found:
            continue
        parameters = tool["function"].get("parameters")
        found[name] = parameters if isinstance(parameters, dict) else {}
    return found


def convert_draft(draft: Any, where: str) -> tuple[dict[str, Any] | None, list[ProblemDict]]:
    """One `ToolDraft` dict as an OpenAI tool, or None with the reason it cannot be."""
    if not isinstance(draft, dict):
        return None, [
            problem(_CODE, f"a tool draft must be an object, got {type(draft).__name__}", where)
        ]
    label = _label(draft)
    name = draft.get("name")
    if not isinstance(name, str) or not name:
        return None, [problem(_CODE, f'{label}: "name" must be a non-empty string', where)]
    raw = draft.get("parameters_json")
    if not isinstance(raw, str):
        return None, [
            problem(
                _CODE,
                f"{label}: parameters_json must be a JSON Schema written "
                f"as a string, got {type(raw).__name__}",
                f"{where}.parameters_json",
            )
        ]
    try:
        parameters = json.loads(raw)
    except ValueError as exc:
        return None, [
            problem(
                _CODE,
                f"{label}: parameters_json is not valid JSON ({exc})",
                f"{where}.parameters_json",
            )
        ]
    if not isinstance(parameters, dict):
        return None, [
            problem(
                _CODE,
                f"{label}: parameters_json must encode a JSON Schema "
                f"object, got {type(parameters).__name__}",
                f"{where}.parameters_json",
            )
        ]
    description = draft.get("description")
    tool = {
        "type": "function",
        "function": {
            "name": name,
            "description": description if isinstance(description, str) else "",
            "parameters": parameters,
        },
    }
    return tool, []


def tools_from_drafts(drafts: Any) -> tuple[list[dict[str, Any]], list[ProblemDict]]:
    """Convert `ToolDraft` dicts to OpenAI tools; unconvertible drafts are reported, not kept.

    Only conversion is checked here; run `check_tools` on the result for the schema rules.
    """
    if not isinstance(drafts, list):
        return [], [problem(_CODE, f"tools must be a list, got {type(drafts).__name__}", "tools")]
    tools: list[dict[str, Any]] = []
    problems: list[ProblemDict] = []
    for index, draft in enumerate(drafts):
        tool, found = convert_draft(draft, f"tools[{index}]")
        problems.extend(found)
        if tool is not None:
            tools.append(tool)
    return tools, problems


def read_only_names(drafts: Any) -> list[str]:
    """Names of the drafts with `read_only` true, in order, without duplicates."""
    names: list[str] = []
    if not isinstance(drafts, list):
        return names
    for draft in drafts:
        if not isinstance(draft, dict) or draft.get("read_only") is not True:
            continue
        name = draft.get("name")
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
