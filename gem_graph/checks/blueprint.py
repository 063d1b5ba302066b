"""Checks on the extraction output: workflows, drafted tools and rules (`ExtractOutput`).

Public API:
- `check_blueprint(blueprint, text=None) -> list[ProblemDict]`, where `blueprint` is
  `ExtractOutput.model_dump()` (tools as `ExtractedTool` dicts with `parameters_json` text)
  and `text` the source text its quotes must come from.
- `step_texts(workflow)`, `rule_texts(blueprint)`: the plain texts of steps and rules, which
  are `{"step"|"rule", "quote"}` objects (plain strings in blueprints made before quotes).

Rules and codes:
- each drafted tool converts to a valid OpenAI tool with a unique name
  (`invalid_tool_schema`, see `checks.tools`);
- at least one workflow with 2 or more steps; at least one read-only tool and one tool that
  changes state, as reads and writes over a database come in pairs; some constraint or rule
  is stated; every tool is used: named by an example call, or mentioned in a workflow's
  graph, steps or description (`invalid_blueprint`);
- every example call names a defined tool (`unknown_tool`) with `arguments_json` that is a
  JSON object (`malformed_arguments`) valid against the tool's schema (`invalid_arguments`);
- `confirm_before` is true or false, and true only on a tool that changes state
  (`invalid_blueprint`);
- every tool, step and rule quotes the text (`unsupported_by_source`, see `checks.source`).
"""

from __future__ import annotations

import re
from typing import Any

from gem_graph.checks.arguments import check_call
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.source import check_quotes
from gem_graph.checks.tools import check_tool, convert_draft

_CODE = "invalid_blueprint"


def _draft_where(where: str, index: int) -> str:
    """Point a tool-check location at the draft's own fields (`parameters_json`, ...)."""
    prefix = f"tools[{index}].function."
    if where.startswith(prefix + "parameters"):
        return f"tools[{index}].parameters_json" + where[len(prefix + "parameters") :]
    if where.startswith(prefix):
        return f"tools[{index}]." + where[len(prefix) :]
    return where


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _texts(value: Any, key: str) -> list[str]:
    """Plain strings, or the `key` text of `{key, "quote"}` objects, in order."""
    items = value if isinstance(value, list) else []
    out = [item.get(key) if isinstance(item, dict) else item for item in items]
    return [item for item in out if isinstance(item, str)]


def step_texts(workflow: Any) -> list[str]:
    """The step texts of a drafted workflow."""
    return _texts(workflow.get("steps") if isinstance(workflow, dict) else None, "step")


def rule_texts(blueprint: Any) -> list[str]:
    """The rule texts of a drafted blueprint."""
    return _texts(blueprint.get("rules") if isinstance(blueprint, dict) else None, "rule")


def _check_drafts(
    drafts: list[Any],
) -> tuple[dict[str, dict[str, Any]], set[str], list[ProblemDict]]:
    """Convert and check the drafts: (usable name -> parameters, all names, problems)."""
    usable: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    problems: list[ProblemDict] = []
    reads = writes = 0
    for index, draft in enumerate(drafts):
        where = f"tools[{index}]"
        tool, found = convert_draft(draft, where)
        problems.extend(found)
        name = draft.get("name") if isinstance(draft, dict) else None
        if isinstance(name, str) and name:
            if name in names:
                problems.append(
                    problem(
                        "invalid_tool_schema",
                        f"tool name {name!r} is defined twice; names must be unique",
                        where,
                    )
                )
            names.add(name)
        if isinstance(draft, dict):
            read_only = draft.get("read_only")
            if read_only is True:
                reads += 1
            elif read_only is False:
                writes += 1
            else:
                problems.append(
                    problem(
                        "invalid_tool_schema",
                        f"tool {name!r}: read_only must be true or false",
                        f"{where}.read_only",
                    )
                )
            problems.extend(_check_confirm_before(draft, name, where))
        if tool is None:
            continue
        schema_ok = True
        for found_problem in check_tool(tool, where):
            found_problem["where"] = _draft_where(found_problem["where"], index)
            schema_ok = schema_ok and not found_problem["where"].startswith(
                f"{where}.parameters_json"
            )
            problems.append(found_problem)
        if schema_ok and isinstance(name, str) and name not in usable:
            # Example calls are validated only against schemas without problems of their own.
            usable[name] = tool["function"]["parameters"]
    if drafts and not reads:
        problems.append(
            problem(
                _CODE,
                "no read-only tool: add the lookups (get/list/search) "
                "an agent needs before it acts, with read_only true",
                "tools",
            )
        )
    if drafts and not writes:
        problems.append(
            problem(
                _CODE,
                "no tool changes state: add the write tools the "
                "workflows perform (create/update/cancel ...), with read_only "
                "false",
                "tools",
            )
        )
    return usable, names, problems


def _check_confirm_before(draft: dict[str, Any], name: Any, where: str) -> list[ProblemDict]:
    """`confirm_before` is a boolean (absent counts as false) and only marks write tools."""
    confirm = draft.get("confirm_before", False)
    if not isinstance(confirm, bool):
        message = f"tool {name!r}: confirm_before must be true or false"
        return [problem(_CODE, message, f"{where}.confirm_before")]
    if confirm and draft.get("read_only") is True:
        message = (
            f"tool {name!r} is read-only, so it needs no agreement: set confirm_before "
            "false, or read_only false if it does change state"
        )
        return [problem(_CODE, message, f"{where}.confirm_before")]
    return []


def check_blueprint(blueprint: Any, text: str | None = None) -> list[ProblemDict]:
    """All problems of an extraction draft (never raises); `text` is the source document."""
    if not isinstance(blueprint, dict):
        return [
            problem(
                _CODE,
                "the blueprint must be an object with workflows, tools and "
                f"rules, got {type(blueprint).__name__}",
                "",
            )
        ]
    problems: list[ProblemDict] = []
    drafts = blueprint.get("tools")
    if not isinstance(drafts, list) or not drafts:
        problems.append(problem(_CODE, "the blueprint defines no tools", "tools"))
        drafts = drafts if isinstance(drafts, list) else []
    usable, names, found = _check_drafts(drafts)
    problems.extend(found)

    raw_workflows = blueprint.get("workflows")
    if not isinstance(raw_workflows, list):
        raw_workflows = []
    workflows = [w for w in raw_workflows if isinstance(w, dict)]
    if not workflows:
        problems.append(problem(_CODE, "the blueprint has no workflow", "workflows"))
    elif not any(len(step_texts(w)) >= 2 for w in workflows):
        problems.append(
            problem(
                _CODE,
                "no workflow has 2 or more steps; describe the multi-step procedure of the text",
                "workflows",
            )
        )

    used: set[str] = set()
    mentions: list[str] = []
    for w_index, workflow in enumerate(raw_workflows):
        if not isinstance(workflow, dict):
            problems.append(problem(_CODE, "a workflow must be an object", f"workflows[{w_index}]"))
            continue
        for key in ("graph", "description"):
            if isinstance(workflow.get(key), str):
                mentions.append(workflow[key])
        mentions.extend(step_texts(workflow))
        calls = workflow.get("example_calls")
        for c_index, call in enumerate(calls if isinstance(calls, list) else []):
            where = f"workflows[{w_index}].example_calls[{c_index}]"
            if not isinstance(call, dict):
                problems.append(
                    problem(
                        "malformed_arguments",
                        "an example call must be an object with tool and arguments_json",
                        where,
                    )
                )
                continue
            tool = call.get("tool")
            if isinstance(tool, str) and tool in names:
                used.add(tool)
                if tool not in usable:
                    continue  # the tool itself is broken; reported above
            problems.extend(check_call(tool, call.get("arguments_json"), usable, where))

    mentioned = "\n".join(mentions).casefold()
    for index, draft in enumerate(drafts):
        name = draft.get("name") if isinstance(draft, dict) else None
        if not isinstance(name, str) or not name or name in used:
            continue
        if not re.search(r"(?<!\w)" + re.escape(name.casefold()) + r"(?!\w)", mentioned):
            problems.append(
                problem(
                    _CODE,
                    f"tool {name!r} is used by no workflow: name it in "
                    "a workflow's graph or steps, or give an example call, "
                    "or drop it",
                    f"tools[{index}]",
                )
            )

    has_constraint = any(s.strip() for w in workflows for s in _strings(w.get("constraints")))
    has_rule = any(s.strip() for s in rule_texts(blueprint))
    if not (has_constraint or has_rule):
        problems.append(
            problem(
                _CODE,
                "no constraints or rules are stated; list the "
                "dependencies, limits and conditions the text implies",
                "rules",
            )
        )
    problems.extend(check_quotes(blueprint, text))
    return problems
