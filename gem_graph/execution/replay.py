"""The replay engine: run calls in fresh sandbox episodes and keep what they really did."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gem_graph.checks.problems import ProblemDict, problem

if TYPE_CHECKING:  # the sandbox loads only when something executes
    from gem_graph.sandbox import DatabaseSpec, EpisodeState, Sandbox


@dataclass(frozen=True)
class Call:
    """One call to replay, and where a problem about it points (`where`)."""

    name: str
    arguments: dict[str, Any]
    where: str


@dataclass(frozen=True)
class Parts:
    """Where problems about the environment point, in the caller's own terms."""

    tools: str = "tools_py"
    database: str = "schema_sql/seed_json"
    seed: str = "seed_json"


@dataclass
class Replay:
    """What one episode did: results in call order, its functions, the final state."""

    results: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, Any] | None = None
    final: EpisodeState | None = None
    isolation: dict[str, Any] = field(default_factory=dict)
    problems: list[ProblemDict] = field(default_factory=list)
    """Why the replay could not run its calls (the database, loading, the final state)."""


async def replay_calls(
    sandbox: Sandbox,
    tools_py: str,
    database: DatabaseSpec,
    calls: list[Call],
    *,
    now: str | None = None,
    salt: int = 0,
    diff: bool = True,
    parts: Parts = Parts(),
) -> Replay:
    """Run `calls` in one fresh episode; stops early when the worker is gone.

    A call to a function the tools do not define gets a `NameError` result. Raises
    `SandboxUnavailable` and `SandboxInfrastructureError` (the machine, not the code).
    """
    from gem_graph.sandbox import (
        FATAL,
        InvalidDatabase,
        SandboxError,
        SandboxInfrastructureError,
        SandboxUnavailable,
    )

    replay = Replay()
    try:
        episode = await sandbox.open_episode(tools_py, database, now=now, seed=0, salt=salt)
    except InvalidDatabase as exc:
        replay.problems.append(problem("invalid_environment", str(exc), parts.database))
        return replay
    except (SandboxUnavailable, SandboxInfrastructureError):
        raise
    except SandboxError as exc:
        replay.problems.append(problem("sandbox_violation", f"the episode could not start: {exc}"))
        return replay
    async with episode:
        replay.isolation = dict(episode.isolation)
        load = await episode.load()
        if not load.get("ok"):
            kind = load.get("error_type") or load.get("status") or "error"
            replay.problems.append(
                problem(
                    "environment_crash",
                    f"{parts.tools} does not load: {kind}: {load.get('error')}",
                    parts.tools,
                )
            )
            return replay
        replay.functions = load.get("functions") or {}
        for call in calls:
            if call.name not in replay.functions:
                replay.results.append(
                    {
                        "status": "error",
                        "error_type": "NameError",
                        "error": f"{parts.tools} defines no function {call.name!r}",
                    }
                )
                continue
            result = dict(await episode.call(call.name, call.arguments))
            replay.results.append(result)
            if result.get("status") in FATAL:
                return replay
        try:
            replay.final = await episode.state(diff=diff)
        except (SandboxUnavailable, SandboxInfrastructureError):
            raise
        except SandboxError as exc:
            replay.problems.append(
                problem("sandbox_violation", f"the final state could not be read: {exc}")
            )
    return replay


async def replay_twice(
    sandbox: Sandbox,
    tools_py: str,
    database: DatabaseSpec,
    calls: list[Call],
    *,
    now: str | None = None,
    parts: Parts = Parts(),
    twice: bool = True,
) -> list[Replay]:
    """The calls replayed in two episodes at once (salts 0 and 1; one with `twice` off).

    Only the first replay reads the diff; the second only has to agree with it. Each is
    retried on a fresh worker when the machine, not the code, fails under it; if one
    still fails, the other is cancelled and its exception propagates.
    """
    from gem_graph.sandbox import retry_infrastructure

    def one(salt: int) -> Any:
        run = functools.partial(
            replay_calls, sandbox, tools_py, database, calls,
            now=now, salt=salt, diff=salt == 0, parts=parts,
        )  # fmt: skip
        return retry_infrastructure(run)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(salt)) for salt in range(2 if twice else 1)]
    except BaseExceptionGroup as failed:  # callers handle the replay's own exception
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
