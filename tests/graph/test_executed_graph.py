"""The document graph with execution on: implement → check_environment → ground ⇄ verify.

Scripted replies reuse the hand-written retail reference environment (as the implement
answer) and its gold trajectories (as the dialogues); the sandbox and the verifier are real.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from library_script import JUDGE_OK, make_model

from gem_graph import build_gem_graph
from gem_graph.environment import load_environment
from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import ModelSettings, PipelineSettings, Settings

RETAIL = Path(__file__).resolve().parents[2] / "environments" / "retail"
TEXT = """Summit Outfitters help centre: cancelling or returning an order.
Sign in with the email and zip code on your account. Open your orders to see each order's
status. Pending orders can be cancelled (choose a reason) or get a new shipping address.
Delivered orders can be returned within 30 days, at most 3 units per return.
"""

pytestmark = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)


def gold(index: int) -> dict[str, Any]:
    lines = (RETAIL / "trajectories.jsonl").read_text().splitlines()
    return json.loads(lines[index])


def as_draft(record: dict[str, Any]) -> dict[str, Any]:
    """A gold record in the shape the ground/refine stages answer with."""
    return {
        "messages": [
            {
                "role": m["role"],
                "content": m.get("content"),
                "tool_calls": m.get("tool_calls"),
                "tool_call_id": m.get("tool_call_id"),
            }
            for m in record["messages"]
        ],
        "scenario": {
            "now": record["scenario"]["now"],
            "rows_json": json.dumps(record["scenario"]["rows"]),
        },
        "patterns": ["clarification", "rule_awareness", "multi_hop"],
        "new_tools": [],
    }


def extract_reply() -> dict[str, Any]:
    env = load_environment(RETAIL)
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "parameters_json": json.dumps(t["function"]["parameters"]),
            "read_only": t["function"]["name"] in env.manifest.read_only_tools,
        }
        for t in env.tools
    ]
    calls = [
        ("authenticate_customer", {"email": "maya.lopez@example.com", "zip_code": "94110"}),
        ("get_customer_orders", {"customer_id": "cus_1001"}),
        ("get_order_details", {"customer_id": "cus_1001", "order_id": "ord_5001"}),
        (
            "cancel_order",
            {"customer_id": "cus_1001", "order_id": "ord_5001", "reason": "ordered_by_mistake"},
        ),
    ]
    return {
        "workflows": [
            {
                "name": "cancel_order",
                "description": "Authenticate, find the order, cancel it.",
                "steps": ["authenticate", "list orders", "inspect the order", "cancel it"],
                "graph": "(authenticate_customer)->(get_customer_orders)->(get_order_details)"
                "->(cancel_order)",
                "constraints": ["authenticate first", "only pending orders can be cancelled"],
                "example_calls": [{"tool": n, "arguments_json": json.dumps(a)} for n, a in calls],
            },
            {
                "name": "change_or_return",
                "description": "Change a pending order or return items.",
                "steps": [
                    "authenticate",
                    "search_products for a replacement",
                    "update_shipping_address of a pending order",
                    "create_return for a delivered order",
                    "get_return_status",
                ],
                "graph": "(authenticate_customer)->(search_products)->(update_shipping_address | "
                "create_return)->(get_return_status)",
                "constraints": ["returns within 30 days of delivery", "at most 3 units per return"],
                "example_calls": [
                    {"tool": "search_products", "arguments_json": json.dumps({"query": "socks"})}
                ],
            },
        ],
        "tools": tools,
        "rules": [
            "Authenticate before account actions.",
            "Only pending orders can be cancelled.",
            "Returns within 30 days, at most 3 units.",
        ],
    }


def implement_reply() -> dict[str, Any]:
    env = load_environment(RETAIL)
    return {
        "schema_sql": env.schema_sql,
        "seed_json": json.dumps(env.seed),
        "tools_py": env.tools_py,
        "policy": env.policy,
    }


def crashing_implement_reply() -> dict[str, Any]:
    reply = implement_reply()
    reply["tools_py"] = reply["tools_py"].replace(
        "def get_customer_orders(db, customer_id):",
        "def get_customer_orders(db, customer_id):\n    {}['missing']",
        1,
    )
    assert "{}['missing']" in reply["tools_py"]
    return reply


def diverging_ground_reply() -> dict[str, Any]:
    """The gold dialogue, but the model wrote a wrong total for the order list."""
    draft = as_draft(gold(0))
    tool_message = draft["messages"][7]
    tool_message["content"] = tool_message["content"].replace("137.5", "99.0")
    assert "99.0" in tool_message["content"]
    return draft


FILTER = {
    "relevant": True,
    "reason": "A web-shop support procedure.",
    "summary": "Cancel or return an order.",
    "platform": "computer",
    "domain": "e_commerce",
    "category": "order_management",
}


def settings() -> Settings:
    return Settings(
        model=ModelSettings(retry_initial_s=0.01),
        pipeline=PipelineSettings(execute=True),
    )


@pytest.fixture
async def sandbox():
    async with Sandbox(settings().sandbox) as box:
        yield box


async def test_a_diverging_dialogue_is_repaired_after_execution_feedback(sandbox):
    table = {
        ("filter", "shop"): FILTER,
        ("extract", "shop"): extract_reply(),
        ("implement", "shop"): [crashing_implement_reply(), implement_reply()],
        ("ground", "shop"): [diverging_ground_reply(), as_draft(gold(0))],
        ("refine", "shop"): as_draft(gold(1)),
        ("judge", "shop"): JUDGE_OK,
    }
    model = make_model(table)
    graph = build_gem_graph(llm=model, settings=settings(), sandbox=sandbox)
    out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    assert out["rejects"] == [], out["rejects"]
    [record] = out["records"]

    implement_calls = model.calls_for("implement")
    assert len(implement_calls) == 2
    assert "[environment_crash]" in implement_calls[1].prompt_text
    assert "KeyError" in implement_calls[1].prompt_text

    ground_calls = model.calls_for("ground")
    assert len(ground_calls) == 2
    feedback = ground_calls[1].prompt_text
    assert "[output_mismatch]" in feedback
    assert "137.5" in feedback  # the real output is shown to the model

    verification = record["verification"]
    assert verification["deterministic"] is True
    assert verification["final_state_sha256"] == gold(1)["verification"]["final_state_sha256"]
    assert verification["isolation"]["tier"] == "standard"
    assert all(c["status"] in {"ok", "tool_error"} for c in verification["calls"])
    assert record["environment"]["name"] == "env_shop"
    assert len(record["environment"]["sha256"]) == 64
    [env] = out["environments"]
    assert env["tools_py"] == load_environment(RETAIL).tools_py
    assert record["messages"] == gold(1)["messages"]


async def test_a_dialogue_that_never_matches_the_code_is_rejected_with_the_real_outputs(sandbox):
    table = {
        ("filter", "shop"): FILTER,
        ("extract", "shop"): extract_reply(),
        ("implement", "shop"): implement_reply(),
        ("ground", "shop"): diverging_ground_reply(),
    }
    model = make_model(table)
    graph = build_gem_graph(llm=model, settings=settings(), sandbox=sandbox)
    out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    [reject] = out["rejects"]
    assert reject["stage"] == "ground"
    assert reject["code"] == "output_mismatch"
    assert reject["attempts"] == settings().attempts.ground


async def test_written_outputs_are_replaced_by_what_the_code_returned(sandbox):
    """A cosmetic difference (key order, spacing) is not a divergence; the real text is kept."""
    draft = as_draft(gold(0))
    parsed = json.loads(draft["messages"][5]["content"])
    draft["messages"][5]["content"] = json.dumps(dict(reversed(list(parsed.items()))), indent=2)
    table = {
        ("filter", "shop"): FILTER,
        ("extract", "shop"): extract_reply(),
        ("implement", "shop"): implement_reply(),
        ("ground", "shop"): draft,
        ("judge", "shop"): JUDGE_OK,
    }
    model = make_model(table)
    s = settings()
    s = s.model_copy(update={"pipeline": s.pipeline.model_copy(update={"refine": False})})
    out = await build_gem_graph(llm=model, settings=s, sandbox=sandbox).ainvoke(
        {"document": {"id": "shop", "text": TEXT}}
    )
    [record] = out["records"]
    assert record["messages"][5]["content"] == gold(0)["messages"][5]["content"]
    assert copy.deepcopy(record["messages"]) == gold(0)["messages"]
