"""Smoke test of an implemented environment in the sandbox: the implement stage's check.

It builds the database, lints and loads the tool code, matches signatures to schemas, runs
the extraction's example calls, checks that read-only tools leave the state unchanged and
that two replays agree. Every finding is a problem fed back to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gem_graph.checks.environment import check_signatures
from gem_graph.checks.lint import lint_tool_code
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.environment import Environment
from gem_graph.execution import Call, Parts, compare_replays, replay_twice

if TYPE_CHECKING:
    from gem_graph.sandbox import DatabaseSpec, Sandbox


async def smoke_test(
    env: Environment,
    calls: Sequence[Call | Mapping[str, Any]],
    sandbox: Sandbox,
    *,
    parts: Parts = Parts(),  # noqa: B008 - frozen
) -> list[ProblemDict]:
    """Every problem that keeps `env` from serving as the tools' implementation.

    `calls` are `Call`s, or example calls as the extraction writes them; `parts` names the
    environment's sections in the caller's terms.
    """
    from gem_graph.sandbox import LIMIT_HIT

    problems = lint_tool_code(env.tools_py)
    known = set(env.manifest.tool_names)
    located = [
        c
        if isinstance(c, Call)
        else Call(str(c["tool"]), dict(c["arguments"]), f"example_calls[{index}] {c['tool']}")
        for index, c in enumerate(calls)
    ]
    located = [c for c in located if c.name in known]
    database: DatabaseSpec = {
        "schema_sql": env.schema_sql,
        "seed": env.seed,
        "key": env.database_key,
    }
    first, second = await replay_twice(sandbox, env.tools_py, database, located, parts=parts)
    found = list(first.problems)
    read_only = set(env.manifest.read_only_tools)
    for call, result in zip(located, first.results, strict=False):
        status = result["status"]
        if status == "error":
            found.append(
                problem(
                    "environment_crash",
                    f"{call.name}({call.arguments}) raised {result.get('error_type')}: "
                    f"{result.get('error')} — domain failures must raise ToolError",
                    call.where,
                )
            )
        elif status in LIMIT_HIT:
            found.append(
                problem(
                    "sandbox_violation",
                    f"{call.name} ended with {status}: {result.get('error')}",
                    call.where,
                )
            )
            break
        if call.name in read_only and result.get("changes"):
            found.append(
                problem(
                    "invalid_environment",
                    f"{call.name} is declared read-only but changed the database",
                    call.where,
                )
            )
    problems += found
    if first.functions is not None:
        problems += check_signatures(first.functions, env.tools)
    if not found and located and not any(r["status"] == "ok" for r in first.results):
        problems.append(
            problem(
                "invalid_environment",
                "no example call succeeded: the seed rows must contain the "
                "records the example calls refer to",
                parts.seed,
            )
        )
    if not found:
        problems += compare_replays(first, second, located)
    return problems
