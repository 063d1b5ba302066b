"""Pure checks of an implemented environment against the tools it must implement."""

from __future__ import annotations

from typing import Any

from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.tools import tool_parameters


def check_signatures(functions: dict[str, Any], tools: list[dict[str, Any]]) -> list[ProblemDict]:
    """The module defines exactly the declared tools, with parameters matching their schemas.

    `functions` is the sandbox's listing: `{name: {"parameters", "required",
    "accepts_var_kwargs"}}`, parameters excluding the leading `db`.
    """
    problems: list[ProblemDict] = []
    declared = tool_parameters(tools)
    for name in sorted(declared.keys() - functions.keys()):
        problems.append(
            problem(
                "invalid_environment",
                f"tools_py defines no function {name}(db, ...) for the declared tool {name!r}",
                f"tools_py:{name}",
            )
        )
    for name in sorted(functions.keys() - declared.keys()):
        if not name.startswith("_"):
            problems.append(
                problem(
                    "invalid_environment",
                    f"tools_py defines {name}(db, ...) but no tool {name!r} is "
                    "declared; make helpers private with a leading underscore",
                    f"tools_py:{name}",
                )
            )
    for name in sorted(declared.keys() & functions.keys()):
        schema = declared[name]
        spec = functions[name]
        props = set((schema.get("properties") or {}).keys())
        required = set(schema.get("required") or [])
        params = set(spec.get("parameters") or [])
        without_default = set(spec.get("required") or [])
        where = f"tools_py:{name}"
        if not spec.get("accepts_var_kwargs") and props - params:
            problems.append(
                problem(
                    "invalid_environment",
                    f"{name}() lacks parameters {sorted(props - params)} that "
                    "its JSON Schema declares",
                    where,
                )
            )
        if params - props:
            problems.append(
                problem(
                    "invalid_environment",
                    f"{name}() takes parameters {sorted(params - props)} that "
                    "its JSON Schema does not declare",
                    where,
                )
            )
        if without_default - required:
            problems.append(
                problem(
                    "invalid_environment",
                    f"{name}() has no default for {sorted(without_default - required)}"
                    " although the schema makes them optional",
                    where,
                )
            )
    return problems
