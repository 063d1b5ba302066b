"""The document graph with execution on: implement → check_environment → ground ⇄ verify.

Scripted replies reuse the hand-written retail reference environment (as the implement
answer) and its gold trajectories (as the dialogues); the sandbox and the verifier are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from library_script import JUDGE_OK, make_model

from gem_graph import build_gem_graph
from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import ModelSettings, PipelineSettings, Settings
from gem_graph.smoke import smoke_test
from gem_graph.testing.reference_replies import (
    RETAIL_TEXT,
    dialogue_calls,
    gold_record,
    reference_environment,
    trajectory_reply,
)
from gem_graph.testing.reference_replies import extract_reply as reference_extract_reply
from gem_graph.testing.reference_replies import implement_reply as reference_implement_reply

TEXT = RETAIL_TEXT

pytestmark = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)


def gold(index: int) -> dict[str, Any]:
    return gold_record("retail", index)


def as_draft(record: dict[str, Any]) -> dict[str, Any]:
    return trajectory_reply(record)


def extract_reply() -> dict[str, Any]:
    return reference_extract_reply(reference_environment("retail"), gold(0), TEXT)


def implement_reply() -> dict[str, Any]:
    return reference_implement_reply(reference_environment("retail"))


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
    assert env["tools_py"] == reference_environment("retail").tools_py
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


def _sandbox_processes() -> list[int]:
    """Our descendants running the sandbox worker script (sessions led by our children)."""
    me = os.getpid()
    found: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if b"worker.py" in cmdline and fields[0] != "Z":
            found[int(entry)] = (int(fields[1]), int(fields[3]))  # ppid, session
    leaders = {pid for pid, (ppid, _) in found.items() if ppid == me}
    return [pid for pid, (ppid, sid) in found.items() if ppid == me or sid in leaders]


def test_a_graph_without_its_own_sandbox_cleans_up_when_the_event_loop_changes():
    """Each asyncio.run has its own loop; the previous loop's sandbox must not linger."""
    table = {
        ("filter", "shop"): FILTER,
        ("extract", "shop"): extract_reply(),
        ("implement", "shop"): implement_reply(),
        ("ground", "shop"): as_draft(gold(0)),
        ("judge", "shop"): JUDGE_OK,
    }
    s = settings()
    s = s.model_copy(update={"pipeline": s.pipeline.model_copy(update={"refine": False})})
    graph = build_gem_graph(llm=make_model(table), settings=s)
    before = set(_sandbox_processes())
    for _ in range(3):
        out = asyncio.run(graph.ainvoke({"document": {"id": "shop", "text": TEXT}}))
        assert len(out["records"]) == 1
    time.sleep(0.3)
    # Only the last loop's fork server and the template of the document's database remain.
    lingering = set(_sandbox_processes()) - before
    assert len(lingering) <= 2, lingering
    for pid in lingering:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def example_calls() -> list[dict[str, Any]]:
    return [{"tool": name, "arguments": args} for name, args in dialogue_calls(gold(0))]


async def test_the_smoke_test_passes_the_reference_environment(sandbox):
    assert await smoke_test(reference_environment("retail"), example_calls(), sandbox) == []


async def test_the_smoke_test_catches_a_read_only_tool_that_writes(sandbox):
    env = reference_environment("retail")
    writes = env.tools_py.replace(
        '    """List the authenticated customer\'s orders, newest first."""\n',
        '    """List the authenticated customer\'s orders, newest first."""\n'
        "    db.execute(\"UPDATE products SET name = name || '*'\")\n",
        1,
    )
    assert writes != env.tools_py
    problems = await smoke_test(dataclasses.replace(env, tools_py=writes), example_calls(), sandbox)
    assert [(p["code"], p["where"]) for p in problems] == [
        ("invalid_environment", "example_calls[1] get_customer_orders")
    ]
    assert "declared read-only but changed the database" in problems[0]["message"]
