"""Smoke test of an implemented environment in the sandbox: the implement stage's check.

It builds the database, lints and loads the tool code, matches signatures to schemas, runs
the extraction's example calls, checks that read-only tools leave the state unchanged and
that two replays agree. Every finding is a problem fed back to the model.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from gem_graph.checks.environment import check_signatures
from gem_graph.checks.execution import same_json
from gem_graph.checks.lint import lint_tool_code
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.environment import Environment

if TYPE_CHECKING:
    from gem_graph.sandbox import DatabaseSpec, Sandbox


async def _replay(
    env: Environment,
    calls: list[dict[str, Any]],
    sandbox: Sandbox,
    *,
    inspect: bool,
) -> tuple[list[dict[str, Any]], str | None, list[ProblemDict], dict[str, Any] | None]:
    """Run the example calls in one episode; returns results, final hash, problems, listing.

    The `inspect` replay also lists the functions and checks that read-only tools change
    no rows; the other replay (with another salt) only has to agree with it.
    """
    from gem_graph.sandbox import LIMIT_HIT, InvalidDatabase

    problems: list[ProblemDict] = []
    results: list[dict[str, Any]] = []
    read_only = set(env.manifest.read_only_tools)
    database: DatabaseSpec = {
        "schema_sql": env.schema_sql,
        "seed": env.seed,
        "key": env.database_key,
    }
    try:
        episode = await sandbox.open_episode(env.tools_py, database, salt=0 if inspect else 1)
    except InvalidDatabase as exc:
        return (
            results,
            None,
            [problem("invalid_environment", str(exc), "schema_sql/seed_json")],
            None,
        )
    async with episode:
        load = await episode.load()
        if not load.get("ok"):
            problems.append(
                problem(
                    "environment_crash",
                    f"tools_py does not load: {load.get('error_type')}: {load.get('error')}",
                    "tools_py",
                )
            )
            return results, None, problems, None
        listing = load["functions"] if inspect else None
        for index, call in enumerate(calls):
            where = f"example_calls[{index}] {call['tool']}"
            result = await episode.call(call["tool"], call["arguments"])
            results.append(dict(result))
            status = result["status"]
            if status == "error":
                problems.append(
                    problem(
                        "environment_crash",
                        f"{call['tool']}({call['arguments']}) raised "
                        f"{result.get('error_type')}: {result.get('error')} — "
                        "domain failures must raise ToolError",
                        where,
                    )
                )
            elif status in LIMIT_HIT:
                problems.append(
                    problem(
                        "sandbox_violation",
                        f"{call['tool']} ended with {status}: {result.get('error')}",
                        where,
                    )
                )
                break
            if inspect and call["tool"] in read_only and result["changes"]:
                problems.append(
                    problem(
                        "invalid_environment",
                        f"{call['tool']} is declared read-only but changed the database",
                        where,
                    )
                )
        final = (await episode.state(diff=False))["sha256"]
    return results, final, problems, listing


async def smoke_test(
    env: Environment, example_calls: list[dict[str, Any]], sandbox: Sandbox
) -> list[ProblemDict]:
    """Every problem that keeps `env` from serving as the tools' implementation."""
    from gem_graph.sandbox import retry_infrastructure

    problems = lint_tool_code(env.tools_py)
    known = set(env.manifest.tool_names)
    calls = [c for c in example_calls if c["tool"] in known]
    (first, hash_a, found, listing), (second, hash_b, _, _) = await asyncio.gather(
        retry_infrastructure(functools.partial(_replay, env, calls, sandbox, inspect=True)),
        retry_infrastructure(functools.partial(_replay, env, calls, sandbox, inspect=False)),
    )
    problems += found
    if listing is not None:
        problems += check_signatures(listing, env.tools)
    if not found and calls and not any(r["status"] == "ok" for r in first):
        problems.append(
            problem(
                "invalid_environment",
                "no example call succeeded: the seed rows must contain the "
                "records the example calls refer to",
                "seed_json",
            )
        )
    if not found and (
        hash_a != hash_b
        or not all(
            a["status"] == b["status"] and same_json(a.get("result"), b.get("result"))
            for a, b in zip(first, second, strict=False)
        )
    ):
        problems.append(
            problem(
                "nondeterministic",
                "two replays of the example calls gave different results; take "
                "time, ids and randomness only from now(), new_id() and rng()",
                "tools_py",
            )
        )
    return problems
