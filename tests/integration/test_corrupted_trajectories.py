"""Corrupted variants of the gold trajectories are rejected with the specific problem code."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gem_graph.environment import Environment, load_environment, make_environment
from gem_graph.resources import data_dir
from gem_graph.sandbox import Sandbox
from gem_graph.settings import SandboxSettings
from gem_graph.verify import verify_trajectory

ENVIRONMENTS = data_dir("environments")


def gold(name: str, record_id: str) -> dict[str, Any]:
    path = ENVIRONMENTS / name / "trajectories.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["id"] == record_id:
            return record
    raise LookupError(record_id)


def call_of(record: dict[str, Any], tool: str, nth: int = 0) -> tuple[int, dict[str, Any]]:
    """Index of the assistant message issuing the nth call of `tool`, and that call."""
    found = [
        (index, call)
        for index, message in enumerate(record["messages"])
        for call in message.get("tool_calls") or []
        if call["function"]["name"] == tool
    ]
    return found[nth]


def response_of(record: dict[str, Any], call_id: str) -> dict[str, Any]:
    return next(m for m in record["messages"] if m.get("tool_call_id") == call_id)


def set_argument(record: dict[str, Any], tool: str, key: str, value: Any, nth: int = 0) -> None:
    _, call = call_of(record, tool, nth)
    arguments = json.loads(call["function"]["arguments"])
    if value is DELETE:
        del arguments[key]
    else:
        arguments[key] = value
    call["function"]["arguments"] = json.dumps(arguments)


DELETE = object()


def rename_tool(record: dict[str, Any]) -> None:
    _, call = call_of(record, "get_order_details")
    call["function"]["name"] = "get_order_everything"


def quantity_as_text(record: dict[str, Any]) -> None:
    set_argument(record, "create_return", "items", [{"product_id": "prd_202", "quantity": "3"}])


def drop_reason(record: dict[str, Any]) -> None:
    set_argument(record, "cancel_order", "reason", DELETE)


def invent_order_id(record: dict[str, Any]) -> None:
    set_argument(record, "get_order_details", "order_id", "ord_7777")


def inflate_refund(record: dict[str, Any]) -> None:
    _, call = call_of(record, "cancel_order")
    response = response_of(record, call["id"])
    response["content"] = json.dumps(
        {"order_id": "ord_5001", "status": "cancelled", "refund_amount": 99.0}
    )


def cancel_delivered_order(record: dict[str, Any]) -> None:
    # ord_5002 is grounded (it appears in an earlier tool output) but is delivered, so the
    # tool refuses; the written output still shows a successful cancellation.
    set_argument(record, "cancel_order", "order_id", "ord_5002")


def drop_tool_message(record: dict[str, Any]) -> None:
    _, call = call_of(record, "list_appointments")
    record["messages"].remove(response_of(record, call["id"]))


def error_instead_of_success(record: dict[str, Any]) -> None:
    _, call = call_of(record, "get_return_status")
    response_of(record, call["id"])["content"] = json.dumps({"error": "return not found"})


def bad_scenario_rows(record: dict[str, Any]) -> None:
    record["scenario"]["rows"] = {"slots": [{"slot_id": "slot_101", "doctor_id": "doc_11"}]}


CASES: list[tuple[str, str, str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown tool", "retail", "retail-cancel-pending-order", rename_tool, "unknown_tool"),
    ("wrong type", "retail", "retail-return-over-limit", quantity_as_text, "invalid_arguments"),
    ("missing required", "retail", "retail-cancel-pending-order", drop_reason, "invalid_arguments"),
    (
        "hallucinated id",
        "retail",
        "retail-cancel-pending-order",
        invent_order_id,
        "ungrounded_value",
    ),
    ("invented output", "retail", "retail-cancel-pending-order", inflate_refund, "output_mismatch"),
    (
        "refusal shown as success",
        "retail",
        "retail-cancel-pending-order",
        cancel_delivered_order,
        "unexpected_error",
    ),
    (
        "missing tool message",
        "clinic",
        "clinic-reschedule-same-doctor",
        drop_tool_message,
        "missing_tool_response",
    ),
    (
        "error shown for a success",
        "retail",
        "retail-return-over-limit",
        error_instead_of_success,
        "unexpected_success",
    ),
    (
        "bad scenario rows",
        "clinic",
        "clinic-late-cancellation",
        bad_scenario_rows,
        "invalid_environment",
    ),
]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxSettings(tier="standard", call_timeout_s=1.0)) as box:
        yield box


async def verify(env: Environment, record: dict[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    return await verify_trajectory(
        environment=env,
        messages=record["messages"],
        tools=record["tools"],
        scenario=record["scenario"],
        sandbox=sandbox,
    )


@pytest.mark.parametrize(
    ("env_name", "record_id", "corrupt", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_corruption_is_rejected_with_its_code(
    env_name: str,
    record_id: str,
    corrupt: Callable[[dict[str, Any]], None],
    code: str,
    sandbox: Sandbox,
) -> None:
    record = copy.deepcopy(gold(env_name, record_id))
    corrupt(record)
    result = await verify(load_environment(ENVIRONMENTS / env_name), record, sandbox)
    assert result["ok"] is False
    assert code in {p["code"] for p in result["problems"]}, result["problems"]


async def test_invented_output_is_replaced_by_the_real_one(sandbox: Sandbox) -> None:
    record = copy.deepcopy(gold("retail", "retail-cancel-pending-order"))
    inflate_refund(record)
    result = await verify(load_environment(ENVIRONMENTS / "retail"), record, sandbox)
    [mismatch] = [p for p in result["problems"] if p["code"] == "output_mismatch"]
    assert "137.5" in mismatch["message"]
    _, call = call_of(result, "cancel_order")
    assert json.loads(response_of(result, call["id"])["content"])["refund_amount"] == 137.5


async def test_refusal_replaces_the_written_success_with_the_real_error(sandbox: Sandbox) -> None:
    record = copy.deepcopy(gold("retail", "retail-cancel-pending-order"))
    cancel_delivered_order(record)
    result = await verify(load_environment(ENVIRONMENTS / "retail"), record, sandbox)
    _, call = call_of(result, "cancel_order")
    content = json.loads(response_of(result, call["id"])["content"])
    assert content == {"error": "only pending orders can be cancelled; order ord_5002 is delivered"}
    entry = next(c for c in result["verification"]["calls"] if c["call_id"] == call["id"])
    assert entry["status"] == "tool_error"


TINY_SCHEMA = "CREATE TABLE counter (k TEXT PRIMARY KEY, n INTEGER);"
TINY_TOOL = {
    "type": "function",
    "function": {"name": "draw", "description": "", "parameters": {"type": "object"}},
}


def tiny_environment(body: str) -> Environment:
    manifest = {"name": "tiny", "tools": [TINY_TOOL]}
    return make_environment(manifest, TINY_SCHEMA, {}, body)


def one_call_dialogue(output: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You draw numbers."},
        {"role": "user", "content": "Draw one, please."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "draw", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": output},
        {"role": "assistant", "content": "Done."},
    ]


async def test_randomness_outside_the_runtime_is_nondeterministic(sandbox: Sandbox) -> None:
    env = tiny_environment("import random\n\ndef draw(db):\n    return random.random()\n")
    result = await verify_trajectory(
        environment=env, messages=one_call_dialogue("0.5"), sandbox=sandbox
    )
    assert "nondeterministic" in {p["code"] for p in result["problems"]}
    assert result["verification"]["deterministic"] is False


async def test_seeded_runtime_randomness_is_deterministic(sandbox: Sandbox) -> None:
    env = tiny_environment(
        "from gem_graph.runtime import rng\n\ndef draw(db):\n    return rng().randint(1, 6)\n"
    )
    first = await verify_trajectory(
        environment=env, messages=one_call_dialogue("1"), sandbox=sandbox
    )
    real = first["verification"]["calls"][0]["output"]
    second = await verify_trajectory(
        environment=env, messages=one_call_dialogue(json.dumps(real)), sandbox=sandbox
    )
    assert second["ok"] is True and second["verification"]["deterministic"] is True


async def test_a_crashing_tool_is_an_environment_crash(sandbox: Sandbox) -> None:
    env = tiny_environment("def draw(db):\n    return {}['missing']\n")
    result = await verify_trajectory(
        environment=env, messages=one_call_dialogue("1"), sandbox=sandbox
    )
    [crash] = [p for p in result["problems"] if p["code"] == "environment_crash"]
    assert "KeyError" in crash["message"]


async def test_a_runaway_tool_is_a_sandbox_violation(sandbox: Sandbox) -> None:
    env = tiny_environment("def draw(db):\n    while True:\n        pass\n")
    result = await verify_trajectory(
        environment=env, messages=one_call_dialogue("1"), sandbox=sandbox, check_determinism=False
    )
    assert [p["code"] for p in result["problems"]] == ["sandbox_violation"]
    assert result["verification"]["final_state_sha256"] is None


async def test_code_that_fails_to_load_is_an_environment_crash(sandbox: Sandbox) -> None:
    env = tiny_environment("def draw(db):\n    return (\n")
    result = await verify_trajectory(
        environment=env, messages=one_call_dialogue("1"), sandbox=sandbox
    )
    assert "environment_crash" in {p["code"] for p in result["problems"]}
