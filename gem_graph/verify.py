"""Verify a trajectory by replaying its tool calls in the sandbox against a real database.

Used by the graph's `verify` node and by `gem-graph verify`. Bad records never raise: every
finding is a problem in the result. Only `SandboxUnavailable` propagates, because then the
requested isolation could not be applied and the caller must know.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gem_graph.checks.arguments import check_call, parse_arguments
from gem_graph.checks.execution import compare_call, same_json, tool_message_content
from gem_graph.checks.grounding import check_grounding
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.tools import tool_parameters
from gem_graph.checks.trajectory import (
    call_arguments,
    call_name,
    check_trajectory,
    find_response,
    iter_tool_calls,
)
from gem_graph.environment import (
    DatabaseBuildError,
    Environment,
    build_database,
    database_bytes,
    load_environment,
    open_database_bytes,
    state_diff,
    state_hash,
)
from gem_graph.sandbox import FATAL, Sandbox, SandboxError, SandboxUnavailable
from gem_graph.settings import Settings

_T = TypeVar("_T")
RECORD_WINDOW = 4
"""Records verified at once by `verify_records` (each in its own worker)."""


@dataclass(frozen=True)
class _Call:
    message_index: int
    call_index: int
    call_id: str
    name: str
    arguments: dict[str, Any]
    response_index: int | None

    @property
    def where(self) -> str:
        return f"messages[{self.message_index}].tool_calls[{self.call_index}]"


@dataclass
class _Replay:
    """What one episode produced: call results in order, the final database, the layers."""

    results: list[dict[str, Any]] = field(default_factory=list)
    final_db: bytes | None = None
    isolation: dict[str, Any] = field(default_factory=dict)
    problems: list[ProblemDict] = field(default_factory=list)


async def verify_trajectory(
    *,
    environment: Environment,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    scenario: dict[str, Any] | None = None,
    sandbox: Sandbox,
    check_determinism: bool = True,
) -> dict[str, Any]:
    """Check, replay and compare one dialogue; returns a JSON-native verification result.

    `{"ok", "problems", "messages" (tool outputs replaced by the real ones),
    "verification": {"calls", "state_diff", "final_state_sha256", "deterministic",
    "isolation"}}`. `final_state_sha256` is None when the replay could not finish;
    `deterministic` is None when `check_determinism` is False.
    """
    tools = environment.tools if tools is None else tools
    problems = check_trajectory_problems(messages, tools)
    out_messages = copy.deepcopy(messages) if isinstance(messages, list) else []
    verification: dict[str, Any] = {
        "calls": [],
        "state_diff": {},
        "final_state_sha256": None,
        "deterministic": False,
        "isolation": {},
    }

    now, rows, scenario_problems = _read_scenario(scenario)
    problems.extend(scenario_problems)
    if scenario_problems:
        return _result(problems, out_messages, verification)
    try:
        initial = build_database(environment.schema_sql, environment.seed, rows)
    except DatabaseBuildError as exc:
        problems.append(problem("invalid_environment", str(exc), "scenario.rows"))
        return _result(problems, out_messages, verification)
    try:
        initial_bytes = database_bytes(initial)
        calls = _executable_calls(messages, tools)
        replays = await _all_or_nothing(
            _replay(sandbox, environment.tools_py, initial_bytes, now, calls)
            for _ in range(2 if check_determinism else 1)
        )
        first = replays[0]
        problems.extend(first.problems)
        verification["isolation"] = first.isolation

        for call, real in zip(calls, first.results, strict=False):
            verification["calls"].append(_call_entry(call, real))
            written = None
            if call.response_index is not None:
                written = _text(out_messages[call.response_index].get("content"))
            problems.extend(compare_call(written, real, call.where))
            if call.response_index is not None and real.get("status") in ("ok", "tool_error"):
                out_messages[call.response_index]["content"] = tool_message_content(real)

        if first.final_db is not None:
            final = open_database_bytes(first.final_db)
            try:
                verification["state_diff"] = state_diff(initial, final)
                verification["final_state_sha256"] = state_hash(final)
            finally:
                final.close()
        if not check_determinism:
            verification["deterministic"] = None
        elif not first.problems:
            determinism = _compare_replays(first, replays[1], calls)
            problems.extend(determinism)
            verification["deterministic"] = not determinism
    except DatabaseBuildError as exc:
        problems.append(problem("sandbox_violation", f"the returned database is unusable: {exc}"))
    finally:
        initial.close()
    return _result(problems, out_messages, verification)


def check_trajectory_problems(messages: Any, tools: Any) -> list[ProblemDict]:
    """The static checks run before any execution: structure, turn order, grounding."""
    return [*check_trajectory(messages, tools), *check_grounding(messages, tools)]


async def verify_records(
    env_dir: str | Path, records: Iterable[Any], settings: Settings
) -> AsyncIterator[dict[str, Any]]:
    """Verify records against the environment in `env_dir`, yielding results in input order.

    Each result is `{"id", "ok", "problems", "final_state_sha256"}`. A record needs only
    `messages`; `id`, `tools` and `scenario` are optional and unknown fields are ignored.
    An item that is not a JSON object (e.g. an `UnreadableLine`) yields a failed result.
    Raises `EnvironmentFormatError` for a bad environment directory.
    """
    environment = load_environment(env_dir)
    async with Sandbox(settings.sandbox) as sandbox:
        window: deque[asyncio.Task[dict[str, Any]]] = deque()
        try:
            for record in records:
                window.append(asyncio.create_task(_verify_record(environment, record, sandbox)))
                if len(window) >= RECORD_WINDOW:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)


@dataclass(frozen=True)
class UnreadableLine:
    """A records line that is not valid JSON, kept so its result stays in input order."""

    line_number: int
    error: str


def read_records(lines: Iterable[str]) -> Iterable[Any]:
    """Parse JSON lines, skipping blank ones; a bad line becomes an `UnreadableLine`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            yield UnreadableLine(number, str(exc))


async def _verify_record(environment: Environment, record: Any, sandbox: Sandbox) -> dict[str, Any]:
    if isinstance(record, UnreadableLine):
        message = f"line {record.line_number} is not valid JSON: {record.error}"
        return _summary(None, [problem("invalid_output", message, "record")], None)
    if not isinstance(record, dict):
        message = f"a record must be a JSON object, got {type(record).__name__}"
        return _summary(None, [problem("invalid_output", message, "record")], None)
    record_id = record.get("id")
    if "messages" not in record:
        return _summary(record_id, [problem("invalid_output", "record has no messages", "record")])
    tools = record.get("tools")
    result = await verify_trajectory(
        environment=environment,
        messages=record["messages"],
        tools=tools,
        scenario=record.get("scenario"),
        sandbox=sandbox,
    )
    return _summary(record_id, result["problems"], result["verification"]["final_state_sha256"])


def _summary(
    record_id: Any, problems: list[ProblemDict], final_state_sha256: str | None = None
) -> dict[str, Any]:
    return {
        "id": record_id,
        "ok": not problems,
        "problems": problems,
        "final_state_sha256": final_state_sha256,
    }


def _read_scenario(
    scenario: Any,
) -> tuple[str | None, dict[str, Any] | None, list[ProblemDict]]:
    """The scenario's clock and rows, or problems when it is malformed."""
    if scenario is None:
        return None, None, []
    if not isinstance(scenario, Mapping):
        return (
            None,
            None,
            [
                problem(
                    "invalid_environment", 'scenario must be an object {"now", "rows"}', "scenario"
                )
            ],
        )
    now = scenario.get("now")
    rows = scenario.get("rows")
    problems: list[ProblemDict] = []
    if now is not None:
        try:
            datetime.fromisoformat(now)
        except (TypeError, ValueError):
            problems.append(
                problem(
                    "invalid_environment",
                    f"scenario.now {now!r} is not an ISO-8601 datetime",
                    "scenario.now",
                )
            )
    if rows is not None and not isinstance(rows, Mapping):
        problems.append(
            problem(
                "invalid_environment",
                "scenario.rows must be an object {table: [row, ...]}",
                "scenario.rows",
            )
        )
    return now, dict(rows) if isinstance(rows, Mapping) else None, problems


def _executable_calls(messages: Any, tools: Any) -> list[_Call]:
    """The calls that passed the structural checks, in dialogue order."""
    parameters = tool_parameters(tools)
    calls: list[_Call] = []
    for site in iter_tool_calls(messages):
        name, raw = call_name(site.call), call_arguments(site.call)
        where = f"messages[{site.message_index}].tool_calls[{site.call_index}]"
        if check_call(name, raw, parameters, where):
            continue
        arguments = parse_arguments(raw)
        if arguments is None:
            continue
        call_id = site.call.get("id")
        calls.append(
            _Call(
                message_index=site.message_index,
                call_index=site.call_index,
                call_id=str(call_id),
                name=str(name),
                arguments=arguments,
                response_index=find_response(messages, site.message_index, call_id),
            )
        )
    return calls


async def _replay(
    sandbox: Sandbox, tools_py: str, db_bytes: bytes, now: str | None, calls: list[_Call]
) -> _Replay:
    """Run the calls in one fresh episode; stops early when the worker is gone."""
    replay = _Replay()
    try:
        episode = await sandbox.open_episode(tools_py, db_bytes, now=now, seed=0)
    except SandboxUnavailable:
        raise
    except SandboxError as exc:
        replay.problems.append(problem("sandbox_violation", f"the episode could not start: {exc}"))
        return replay
    try:
        replay.isolation = dict(episode.isolation)
        load = await episode.load()
        if not load.get("ok"):
            kind = load.get("error_type") or load.get("status") or "error"
            replay.problems.append(
                problem(
                    "environment_crash",
                    f"tools.py failed to load: {kind}: {load.get('error')}",
                    "tools.py",
                )
            )
            return replay
        functions = load.get("functions") or {}
        for call in calls:
            if call.name not in functions:
                replay.results.append(
                    {
                        "status": "error",
                        "error_type": "NameError",
                        "error": f"tools.py defines no function {call.name!r}",
                    }
                )
                continue
            result = dict(await episode.call(call.name, call.arguments))
            replay.results.append(result)
            if result.get("status") in FATAL:
                return replay
        try:
            replay.final_db = await episode.snapshot()
        except SandboxUnavailable:
            raise
        except SandboxError as exc:
            replay.problems.append(
                problem("sandbox_violation", f"the final database could not be read back: {exc}")
            )
    finally:
        await episode.close()
    return replay


async def _all_or_nothing(coroutines: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run concurrently; if one fails, cancel the others (closing their episodes) and raise."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _compare_replays(first: _Replay, second: _Replay, calls: list[_Call]) -> list[ProblemDict]:
    """Nondeterminism between two replays of the same calls."""
    for call, a, b in zip(calls, first.results, second.results, strict=False):
        if a.get("status") != b.get("status") or not same_json(_output(a), _output(b)):
            return [
                problem(
                    "nondeterministic",
                    f"replaying {call.name!r} gave a different "
                    f"output the second time: {_brief(_output(a))} vs "
                    f"{_brief(_output(b))}; take time, ids and randomness only from "
                    "gem_graph.runtime (now, new_id, rng)",
                    call.where,
                )
            ]
    if len(first.results) != len(second.results) or second.problems:
        return [problem("nondeterministic", "the second replay did not run the same calls")]
    if first.final_db is None or second.final_db is None:
        return []
    hashes = []
    for data in (first.final_db, second.final_db):
        conn = open_database_bytes(data)
        try:
            hashes.append(state_hash(conn))
        finally:
            conn.close()
    if hashes[0] != hashes[1]:
        return [
            problem(
                "nondeterministic",
                "replaying the same calls left a different final "
                "database; take time, ids and randomness only from gem_graph.runtime",
            )
        ]
    return []


def _call_entry(call: _Call, real: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message_index": call.message_index,
        "call_id": call.call_id,
        "tool": call.name,
        "status": real.get("status"),
        "output": _output(real),
    }


def _output(real: Mapping[str, Any]) -> Any:
    return real.get("result") if real.get("status") == "ok" else real.get("error")


def _text(content: Any) -> str | None:
    return content if isinstance(content, str) else None


def _brief(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _result(
    problems: list[ProblemDict], messages: list[Any], verification: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ok": not problems,
        "problems": problems,
        "messages": messages,
        "verification": verification,
    }
