"""Checks on one tool call: the tool exists and its arguments fit the tool's JSON Schema.

Public functions:
- `parse_arguments(raw) -> dict | None`: a call's `arguments` JSON string as an object, or
  None when it is not a JSON object string.
- `check_call(name, arguments, tools_by_name, where) -> list[ProblemDict]`: codes
  `unknown_tool`, `malformed_arguments` (not a strict JSON object string: the message says
  why, e.g. a duplicate key, NaN or a lone surrogate), `invalid_arguments`
  (fails the schema, or names a property the schema does not declare), and
  `invalid_tool_schema` when the tool's own schema is too broken to validate against.
- `argument_problems(name, arguments, schema, where) -> list[ProblemDict]`: the schema part
  of `check_call`, for arguments already parsed.

Undeclared properties are refused even without `"additionalProperties": false`, because the
runtime calls tools as `fn(db, **arguments)` and an unknown keyword would crash the code.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import validator_for

from gem_graph import strictjson
from gem_graph.checks.metaschema import metaschema_error
from gem_graph.checks.problems import ProblemDict, problem

_MAX_ERRORS = 5
_REQUIRED = re.compile(r"^('.*') is a required property$")


def parse_arguments(raw: Any) -> dict[str, Any] | None:
    """The arguments object encoded in `raw`, or None if `raw` is not a JSON object string.

    Parsed strictly (`strictjson`): duplicate keys, NaN, lone surrogates or deep nesting
    make the arguments malformed rather than read one arbitrary way.
    """
    if not isinstance(raw, str):
        return None
    try:
        value = strictjson.loads(raw)
    except strictjson.StrictJSONError:
        return None
    return value if isinstance(value, dict) else None


def check_call(
    name: Any, arguments: Any, tools_by_name: dict[str, dict[str, Any]], where: str
) -> list[ProblemDict]:
    """Problems with one call of tool `name` whose `arguments` is the raw JSON string.

    `tools_by_name` maps tool names to parameters schemas (see `tools.tool_parameters`).
    """
    if not isinstance(name, str) or name not in tools_by_name:
        known = ", ".join(sorted(tools_by_name)) or "none"
        return [
            problem(
                "unknown_tool", f"call to undefined tool {name!r}; defined tools: {known}", where
            )
        ]
    if not isinstance(arguments, str):
        return [
            problem(
                "malformed_arguments",
                f"call to {name!r}: arguments must be a JSON "
                f"object encoded as a string, got {type(arguments).__name__}",
                where,
            )
        ]
    try:
        value = strictjson.loads(arguments)
    except strictjson.StrictJSONError as exc:
        return [
            problem(
                "malformed_arguments",
                f"call to {name!r}: arguments must be one strict JSON object ({exc}): "
                f"{_short(arguments)}",
                where,
            )
        ]
    if not isinstance(value, dict):
        return [
            problem(
                "malformed_arguments",
                f"call to {name!r}: arguments must be a JSON "
                f"object, got {type(value).__name__}: {_short(arguments)}",
                where,
            )
        ]
    return argument_problems(name, value, tools_by_name[name], where)


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    """A validator per distinct schema, which must pass meta-validation first."""
    schema = json.loads(schema_json)
    error = metaschema_error(schema)
    if error is not None:
        raise SchemaError(error)
    return validator_for(schema, default=Draft202012Validator)(schema)


def argument_problems(
    name: str, arguments: dict[str, Any], schema: dict[str, Any], where: str
) -> list[ProblemDict]:
    """Schema problems of already parsed `arguments` for tool `name` with `schema`."""
    problems: list[ProblemDict] = []
    properties = schema.get("properties")
    declared = properties if isinstance(properties, dict) else {}
    undeclared = [key for key in arguments if key not in declared]
    for key in undeclared:
        allowed = ", ".join(sorted(declared)) or "none"
        problems.append(
            problem(
                "invalid_arguments",
                f"call to {name!r}: unexpected argument "
                f"{key!r}; the tool's parameters are: {allowed}",
                where,
            )
        )
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
        errors = sorted(validator.iter_errors(arguments), key=_error_order)
    except SchemaError:
        problems.append(
            problem(
                "invalid_tool_schema",
                f"cannot validate the call: tool {name!r} has an invalid parameters schema",
                where,
            )
        )
        return problems
    except Exception as exc:  # exotic schema keywords must not crash the check
        problems.append(
            problem(
                "invalid_tool_schema",
                f"cannot validate the call to {name!r}: {_short(str(exc))}",
                where,
            )
        )
        return problems
    reported = 0
    for error in errors:
        if error.validator == "additionalProperties" and not error.path:
            continue  # already reported by name above
        if reported == _MAX_ERRORS:
            problems.append(
                problem(
                    "invalid_arguments", f"call to {name!r}: more argument errors omitted", where
                )
            )
            break
        problems.append(
            problem("invalid_arguments", f"call to {name!r}: {_describe(error)}", where)
        )
        reported += 1
    return problems


def _error_order(error: ValidationError) -> tuple[str, str]:
    return ("/".join(str(p) for p in error.path), error.message)


def _describe(error: ValidationError) -> str:
    """A sentence naming the argument at fault, e.g. `argument 'qty': 'two' is not ...`."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path).lstrip(".")
    if error.validator == "required":
        missing = _REQUIRED.match(error.message)
        what = missing.group(1) if missing else _short(error.message)
        inside = f" (in {path})" if path else ""
        return f"missing required argument {what}{inside}"
    if path:
        return f"argument {path!r}: {_short(error.message)}"
    return _short(error.message)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
