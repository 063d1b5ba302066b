"""User goals written by ground/refine and the synthesizer; the gold check at emit time."""

from __future__ import annotations

import copy
from typing import Any

from eval_agents import DemoTasks

from gem_graph.environment import load_environment
from gem_graph.eval.gold import gold_reject
from gem_graph.run.store import RunStore
from gem_graph.sandbox import Sandbox
from gem_graph.schemas import TrajectoryOutput
from gem_graph.stages.ground import trajectory_from_draft
from gem_graph.synthesizer.format import parse_target, render_target, target_from_parts

GOAL = {
    "persona": "Priya, a library member.",
    "wants": "Renew her books.",
    "known_facts": ["card number 2300-1187-42"],
    "accepts": ["paying 5 dollars"],
    "refuses": [],
}


def test_the_dialogue_schema_asks_for_a_goal_and_old_answers_still_parse():
    schema = TrajectoryOutput.model_json_schema()
    assert "user_goal" in schema["required"]  # strict servers see every field required
    assert "default" not in schema["properties"]["user_goal"]
    old = {"messages": [], "scenario": {"now": None, "rows_json": "{}"}, "patterns": [],
           "new_tools": []}  # fmt: skip
    assert TrajectoryOutput.model_validate(old).user_goal is None
    trajectory, problems = trajectory_from_draft({**old, "user_goal": GOAL})
    assert problems == [] and trajectory["user_goal"] == GOAL
    assert "user_goal" not in trajectory_from_draft(old)[0]


def _target(goal: dict[str, Any] | None) -> Any:
    return target_from_parts(
        tools=[{"type": "function", "function": {"name": "t", "description": "d",
                "parameters": {"type": "object", "properties": {}}}}],
        schema_sql="CREATE TABLE a (id TEXT PRIMARY KEY);", seed={"a": []},
        tools_py="def t(db):\n    return 1\n", policy="none", read_only_tools=["t"],
        scenario=None, messages=[{"role": "user", "content": "hi"}], user_goal=goal,
    )  # fmt: skip


def test_the_synthesizer_target_carries_an_optional_goal():
    text = render_target(_target(GOAL))
    assert "<user_goal>" in text
    target, problems = parse_target(text)
    assert problems == [] and target is not None and target["user_goal"] == GOAL
    target, problems = parse_target(render_target(_target(None)))
    assert problems == [] and target is not None and "user_goal" not in target
    broken = text.replace('"wants": "Renew her books.", ', "")
    target, problems = parse_target(broken)
    assert target is None and problems[0]["where"] == "user_goal"


async def test_a_record_its_gold_cannot_pass_becomes_a_gold_failed_reject(
    demo_tasks: DemoTasks, sandbox: Sandbox
):
    with RunStore(demo_tasks.run_dir) as store:
        record = next(r for r in store.iter_records() if r["id"].startswith("library"))
    environment = load_environment(demo_tasks.environments / record["environment"]["name"])
    state = {"document": {"id": "library-renewals"}, "stage": "judge", "attempts": {"judge": 1},
             "environment": {"present": True}, "usage": []}  # fmt: skip
    assert await gold_reject(state, record, environment, sandbox) is None

    tampered = copy.deepcopy(record)
    tampered["verification"]["final_state_sha256"] = "0" * 64
    reject = await gold_reject(state, tampered, environment, sandbox)
    assert reject is not None and reject["code"] == "gold_failed"
    assert "state_mismatch" in reject["reason"] and reject["stage"] == "judge"

    opens_with_assistant = copy.deepcopy(record)
    opens_with_assistant["messages"].insert(1, {"role": "assistant", "content": "Hello!"})
    reject = await gold_reject(state, opens_with_assistant, environment, sandbox)
    assert reject is not None and "open with a user turn" in reject["reason"]


async def test_a_record_a_do_nothing_agent_passes_becomes_a_trivial_task_reject(
    demo_tasks: DemoTasks, sandbox: Sandbox
):
    from gem_graph.eval.catalog import EnvironmentCatalog
    from gem_graph.eval.environment import TaskEnvironment
    from gem_graph.export import to_task

    with RunStore(demo_tasks.run_dir) as store:
        record = next(r for r in store.iter_records() if r["id"].startswith("library"))
    environment = load_environment(demo_tasks.environments / record["environment"]["name"])
    env = TaskEnvironment(sandbox, EnvironmentCatalog([demo_tasks.environments]))
    await env.reset(demo_tasks.task("library-renewals"))
    initial = await env.state_sha256()
    await env.close()
    state = {"document": {"id": "library-renewals"}, "stage": "judge", "attempts": {},
             "usage": []}  # fmt: skip
    chat = copy.deepcopy(record)
    chat["messages"] = [*record["messages"][:2], {"role": "assistant", "content": "Hello!"}]
    chat["verification"].update(final_state_sha256=initial, state_diff={}, calls=[])
    reject = await gold_reject(state, chat, environment, sandbox)
    assert reject is not None and reject["code"] == "trivial_task"

    # a read-only record whose reference tells what it looked up is not trivial
    messages = record["messages"]
    writes = ("pay_fine", "renew_loan")
    first_write = next(
        i
        for i, m in enumerate(messages)
        if any(c["function"]["name"] in writes for c in m.get("tool_calls") or [])
    )
    lookup = copy.deepcopy(chat)
    lookup["messages"] = messages[:first_write]
    assert to_task(lookup)["required_facts"]
    assert await gold_reject(state, lookup, environment, sandbox) is None
