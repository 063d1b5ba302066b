"""Verify a trajectory by replaying its tool calls in the sandbox against a real database.

Used by the graph's `verify` node and by `gem-graph verify`. Bad records never raise: every
finding is a problem in the result. Only `SandboxUnavailable` propagates, because then the
requested isolation could not be applied and the caller must know.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gem_graph import strictjson
from gem_graph.checks.arguments import check_call, parse_arguments
from gem_graph.checks.dialogue import DialogueContext, check_dialogue
from gem_graph.checks.execution import compare_call, tool_message_content
from gem_graph.checks.messages import (
    call_arguments,
    call_name,
    find_response,
    iter_tool_calls,
)
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.record import check_record_claims
from gem_graph.checks.tools import tool_parameters
from gem_graph.dbstate import STATE_HASH_VERSION
from gem_graph.environment import Environment, environment_ref, load_environment
from gem_graph.execution import Call, Parts, compare_replays, replay_twice
from gem_graph.execution.determinism import output
from gem_graph.sandbox import (
    DatabaseSpec,
    Sandbox,
    SandboxUnavailable,
)
from gem_graph.settings import Settings


@dataclass(frozen=True)
class UnreadableLine:
    """A records line that is not a strict JSON value, kept so its verdict stays in order."""

    line_number: int
    error: str


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

    @property
    def executable(self) -> Call:
        return Call(self.name, self.arguments, self.where)


_PARTS = Parts(tools="tools.py", database="scenario.rows", seed="scenario.rows")
"""An environment loaded for verification was checked already: its rows are the suspect."""


async def verify_trajectory(
    *,
    environment: Environment,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    scenario: dict[str, Any] | None = None,
    sandbox: Sandbox,
    check_determinism: bool = True,
    context: DialogueContext | None = None,
) -> dict[str, Any]:
    """Check, replay and compare one dialogue; returns a JSON-native verification result.

    `{"ok", "problems", "messages" (tool outputs replaced by the real ones),
    "verification": {"calls", "state_diff", "final_state_sha256", "state_hash_version",
    "deterministic", "isolation"}}`. `final_state_sha256` is None when the replay could not finish;
    `deterministic` is None when `check_determinism` is False.
    """
    tools = environment.tools if tools is None else tools
    problems = check_dialogue(messages, tools, context or dialogue_context(environment, scenario))
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
    database = DatabaseSpec(
        schema_sql=environment.schema_sql,
        seed=environment.seed,
        rows=rows,
        key=environment.database_key,
    )
    calls = _executable_calls(messages, tools)
    replays = await replay_twice(
        sandbox,
        environment.tools_py,
        database,
        [call.executable for call in calls],
        now=now,
        parts=_PARTS,
        twice=check_determinism,
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

    if first.final is not None:
        verification["state_diff"] = first.final["diff"]
        verification["final_state_sha256"] = first.final["sha256"]
        verification["state_hash_version"] = STATE_HASH_VERSION
    if not check_determinism:
        verification["deterministic"] = None
    elif not first.problems:
        determinism = compare_replays(first, replays[1], [call.executable for call in calls])
        problems.extend(determinism)
        verification["deterministic"] = not determinism
    return _result(problems, out_messages, verification)


def dialogue_context(
    environment: Environment | None, scenario: Any, settings: Settings | None = None
) -> DialogueContext:
    """What the dialogue checks know from the environment, the scenario and the settings."""
    pipeline = (settings or Settings()).pipeline
    now = scenario.get("now") if isinstance(scenario, Mapping) else None
    base = DialogueContext(
        scenario_now=now if isinstance(now, str) else None,
        max_messages=pipeline.max_messages,
        max_identical_calls=pipeline.max_identical_calls,
    )
    if environment is None:
        return base
    manifest = environment.manifest
    return replace(
        base,
        read_only_tools=frozenset(manifest.read_only_tools),
        confirm_before=frozenset(manifest.confirm_before),
        policy=manifest.policy,
        tool_sources=environment.tools_py,
    )


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
                window.append(
                    asyncio.create_task(_verify_record(environment, record, sandbox, settings))
                )
                if len(window) >= RECORD_WINDOW:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)


async def _verify_record(
    environment: Environment, record: Any, sandbox: Sandbox, settings: Settings | None = None
) -> dict[str, Any]:
    """Exactly one verdict for one record, whatever it holds.

    A line that is unreadable, not an object, without `messages` or with an unusable `id`
    is an `invalid_record`. An unexpected exception inside the checks becomes this record's
    `internal_error` instead of ending the run; only `SandboxUnavailable` propagates.
    """
    if isinstance(record, UnreadableLine):
        message = f"line {record.line_number} is not a readable record: {record.error}"
        return _summary(None, [problem("invalid_record", message, "record")])
    if not isinstance(record, dict):
        message = f"a record must be a JSON object, got {type(record).__name__}"
        return _summary(None, [problem("invalid_record", message, "record")])
    problems: list[ProblemDict] = []
    record_id = record.get("id")
    if record_id is not None:
        reason = f"got {type(record_id).__name__}"
        if type(record_id) is str or type(record_id) is int:
            try:
                strictjson.dumps(record_id)  # lone surrogates, ints too long to print
                reason = ""
            except strictjson.StrictJSONError as exc:
                reason = str(exc)
        if reason:
            message = f"id must be a string, an integer or null ({reason}); reported as null"
            problems.append(problem("invalid_record", message, "id"))
            record_id = None
    if "messages" not in record:
        problems.append(problem("invalid_record", "record has no messages", "record"))
        return _summary(record_id, problems)
    record, decode_problems = _decode_json_columns(record)
    problems.extend(decode_problems)
    try:
        scenario = record.get("scenario")
        result = await verify_trajectory(
            environment=environment,
            messages=record["messages"],
            scenario=scenario,
            sandbox=sandbox,
            context=dialogue_context(environment, scenario, settings),
        )
        verification = result["verification"]
        claims = check_record_claims(
            record,
            environment_ref=environment_ref(environment),
            tools=environment.tools,
            final_state_sha256=verification["final_state_sha256"],
            state_diff=verification["state_diff"],
        )
    except SandboxUnavailable:
        raise
    except Exception as exc:  # one hostile record must not end the run or lose its verdict
        detail = str(exc)[:300]
        message = (
            f"verification stopped on an unexpected {type(exc).__name__}"
            + (f": {detail}" if detail else "")
            + "; the record could not be checked"
        )
        problems.append(problem("internal_error", message, "record"))
        return _summary(record_id, problems)
    problems.extend(claims)
    problems.extend(result["problems"])
    return _summary(record_id, problems, verification["final_state_sha256"])


def _summary(
    record_id: Any, problems: list[ProblemDict], final_state_sha256: str | None = None
) -> dict[str, Any]:
    """One record's verdict; problem texts are made valid Unicode so it always prints.

    Messages may quote hostile input (e.g. raw arguments): lone surrogates become
    visible `\\udXXX` escapes instead of breaking UTF-8 output downstream.
    """

    def clean(text: Any) -> str:
        return str(text).encode("utf-8", "backslashreplace").decode("utf-8")

    cleaned: list[ProblemDict] = [
        {"code": p["code"], "message": clean(p["message"]), "where": clean(p["where"])}
        for p in problems
    ]
    return {
        "id": record_id,
        "ok": not cleaned,
        "problems": cleaned,
        "final_state_sha256": final_state_sha256,
    }


JSON_COLUMNS = ("tools", "scenario")
"""Fields the `openai` export writes as JSON strings (Arrow needs one type per column)."""


def _decode_json_columns(record: dict[str, Any]) -> tuple[dict[str, Any], list[ProblemDict]]:
    """`record` with its JSON-string columns decoded, so that `verify` reads this tool's own
    `openai` exports as well as native records; an undecodable one is a problem."""
    decoded = dict(record)
    problems: list[ProblemDict] = []
    for key in JSON_COLUMNS:
        value = decoded.get(key)
        if not isinstance(value, str):
            continue
        try:
            decoded[key] = strictjson.loads(value)
        except strictjson.StrictJSONError as exc:
            message = f"{key} is a string but not JSON ({exc})"
            problems.append(problem("invalid_record", message, key))
            del decoded[key]
    return decoded, problems


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


def _call_entry(call: _Call, real: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message_index": call.message_index,
        "call_id": call.call_id,
        "tool": call.name,
        "status": real.get("status"),
        "output": output(real),
    }


def _text(content: Any) -> str | None:
    return content if isinstance(content, str) else None


def _result(
    problems: list[ProblemDict], messages: list[Any], verification: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ok": not problems,
        "problems": problems,
        "messages": messages,
        "verification": verification,
    }
