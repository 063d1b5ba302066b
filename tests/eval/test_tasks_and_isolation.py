"""The `tasks` export's goal, facts and gold gate; episodes isolated from each other."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from eval_agents import DemoTasks, ScriptAgent

from gem_graph.eval.catalog import EnvironmentCatalog
from gem_graph.eval.environment import TaskEnvironment
from gem_graph.eval.facts import told
from gem_graph.eval.task import EvalTask, parse_task
from gem_graph.export import ExportError, to_task
from gem_graph.run.store import RunStore
from gem_graph.sandbox import Sandbox


def demo_records(demo: DemoTasks) -> list[dict[str, Any]]:
    with RunStore(demo.run_dir) as store:
        return list(store.iter_records())


def test_demo_tasks_carry_the_goal_facts_and_reference(demo_tasks: DemoTasks):
    for record in demo_records(demo_tasks):
        task = to_task(record)
        assert task["goal_missing"] is False
        assert task["user_goal"]["known_facts"] and task["user_goal"]["persona"]
        assert task["reference_messages"] == record["messages"][1:]
        said = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert all(told(fact["value"], said) for fact in task["required_facts"])
        assert isinstance(parse_task(json.loads(json.dumps(task)), 1), EvalTask)


def test_old_records_export_with_the_goal_marked_missing(demo_tasks: DemoTasks):
    record = copy.deepcopy(demo_records(demo_tasks)[0])
    record.pop("user_goal")
    task = to_task(record)
    assert task["user_goal"] is None and task["goal_missing"] is True
    assert isinstance(parse_task(task, 1), EvalTask)


def test_a_task_its_gold_cannot_pass_is_not_exported(demo_tasks: DemoTasks):
    record = copy.deepcopy(demo_records(demo_tasks)[0])
    record["verification"]["calls"][0]["status"] = "timeout"
    with pytest.raises(ExportError, match="gold cannot pass"):
        to_task(record)
    record = copy.deepcopy(demo_records(demo_tasks)[0])
    record["verification"]["deterministic"] = False
    with pytest.raises(ExportError, match="gold cannot pass"):
        to_task(record)


def test_fact_matching_reads_numbers_in_any_format_and_whole_ids():
    assert told(7.5, ["your balance is now $7.50"])
    assert told(1250, ["a total of 1,250 points"])
    assert not told(7.5, ["you paid $75"])
    assert told("apt_1", ["Booked: appointment apt_1 on Wednesday"])
    assert not told("apt_1", ["appointment apt_12"])


async def test_concurrent_episodes_of_one_task_never_see_each_others_writes(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    pay = {
        "id": "p1",
        "type": "function",
        "function": {
            "name": "pay_fine",
            "arguments": json.dumps({"member_id": "mem_31", "amount": 5}),
        },
    }
    find = {
        "id": "f1",
        "type": "function",
        "function": {
            "name": "find_member",
            "arguments": json.dumps({"card_number": "2300-1187-42"}),
        },
    }

    async def episode(calls: list[dict[str, Any]]) -> str:
        env = TaskEnvironment(sandbox, catalog)
        await env.reset(task)
        for _ in range(3):
            for call in calls:
                await env.step({"role": "assistant", "content": None, "tool_calls": [call]})
        observation, *_ = await env.step(
            {"role": "assistant", "content": None, "tool_calls": [find]}
        )
        await env.close()
        return json.loads(observation["messages"][0]["content"])["fines_balance"]

    balances = await asyncio.gather(episode([pay]), episode([find]), episode([pay]))
    # each payer paid 5 twice (the third payment exceeds the balance); the reader saw none
    assert balances == [2.5, 12.5, 2.5]


async def test_hostile_task_fields_stay_inside_the_task(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    from gem_graph.eval.catalog import TaskError

    base = demo_tasks.task("library-renewals").model_dump()
    escape = EvalTask.model_validate({**base, "environment": {"name": "../../etc"}})
    with pytest.raises(TaskError, match="not a valid environment name"):
        catalog.get(escape)
    changed = EvalTask.model_validate({**base, "environment": {"name": base["environment"][
        "name"], "sha256": "f" * 64}})  # fmt: skip
    with pytest.raises(TaskError) as info:
        catalog.get(changed)
    assert info.value.code == "environment_mismatch"
    extra_tool = {"type": "function", "function": {"name": "run_shell", "parameters": {
        "type": "object", "properties": {"cmd": {"type": "string"}}}}}  # fmt: skip
    task = EvalTask.model_validate({**base, "tools": [*base["tools"], extra_tool]})
    env = TaskEnvironment(sandbox, catalog)
    with pytest.raises(TaskError) as info:  # the task file's tools are not the environment's
        await env.reset(task)
    assert info.value.code == "environment_mismatch" and env.task is None
    await env.close()


async def test_a_task_files_hostile_schema_never_runs_in_the_client(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    """A catastrophic-backtracking `pattern` in the task file's schema would freeze the
    loop if the client compiled it: the task is refused, calls use the environment's."""
    import time

    from gem_graph.eval.environment import EpisodeLimits
    from gem_graph.eval.runner import run_episode

    task = demo_tasks.task("library-renewals")
    tools = copy.deepcopy(task.tools)
    for tool in tools:
        if tool["function"]["name"] == "find_member":
            tool["function"]["parameters"]["properties"]["card_number"]["pattern"] = "^(a+)+$"
    evil = task.model_copy(update={"tools": tools})
    call = {"id": "c1", "type": "function", "function": {"name": "find_member",
            "arguments": json.dumps({"card_number": "a" * 27 + "!"})}}  # fmt: skip
    agent = ScriptAgent([{"role": "assistant", "content": None, "tool_calls": [call]}])
    env = TaskEnvironment(sandbox, catalog, limits=EpisodeLimits(time_budget_s=5, max_turns=1))
    started = time.monotonic()
    result = await run_episode(env, agent, evil)
    assert (result["status"], result["reason"]) == ("bad_task", "environment_mismatch")
    assert time.monotonic() - started < 2
    env = TaskEnvironment(sandbox, catalog)
    await env.reset(task)  # the real task: the environment's own schemas bind the tools
    assert env.tools == task.tools
    await env.close()
