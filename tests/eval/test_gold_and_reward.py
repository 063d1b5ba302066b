"""The gold agent scores 1 on every demo task; wrong agents score 0 with the right reason."""

from __future__ import annotations

from typing import Any

from eval_agents import DemoTasks, LoopingAgent, assistant_turns, set_argument

from gem_graph.eval.agents import GoldAgent
from gem_graph.eval.catalog import EnvironmentCatalog
from gem_graph.eval.environment import EpisodeLimits, TaskEnvironment
from gem_graph.eval.runner import run_episode
from gem_graph.sandbox import Sandbox


async def play(
    sandbox: Sandbox, catalog: EnvironmentCatalog, agent: Any, task: Any, **limits: Any
) -> dict[str, Any]:
    env = TaskEnvironment(sandbox, catalog, limits=EpisodeLimits(**limits))
    return await run_episode(env, agent, task)


async def test_gold_scores_one_on_every_demo_task(demo_tasks: DemoTasks, sandbox, catalog):
    for task in demo_tasks.tasks.values():
        assert task.required_facts, task.id  # every demo task has facts to tell
        result = await play(sandbox, catalog, GoldAgent(), task)
        assert (result["status"], result["reward"], result["reason"]) == ("scored", 1.0, "ok")
        assert result["final_state_sha256"] == task.expected_final_state_sha256
        assert result["state_diff"] == task.expected_state_diff


async def test_a_wrong_write_scores_zero_for_the_state(demo_tasks: DemoTasks, sandbox, catalog):
    task = demo_tasks.task("library-renewals")
    agent = assistant_turns(task, lambda i, m: set_argument(m, "pay_fine", "amount", 6))
    result = await play(sandbox, catalog, agent, task)
    assert (result["reward"], result["reason"]) == (0.0, "state_mismatch")
    assert "members" in result["detail"] or "different values" in result["detail"]


async def test_a_skipped_fact_scores_zero_naming_it(demo_tasks: DemoTasks, sandbox, catalog):
    task = demo_tasks.task("library-renewals")

    def vague(index: int, message: dict[str, Any]) -> None:
        if message.get("content") and "2025-03-26" in message["content"]:
            message["content"] = "Done, your payment went through and the book is renewed."

    result = await play(sandbox, catalog, assistant_turns(task, vague), task)
    assert (result["reward"], result["reason"]) == (0.0, "missing_facts")
    assert result["missing_facts"] == [7.5, "2025-03-26"]  # the new balance and due date
    assert "2025-03-26" in result["detail"]


async def test_invented_ids_score_zero(demo_tasks: DemoTasks, sandbox, catalog):
    task = demo_tasks.task("library-renewals")
    agent = assistant_turns(task, lambda i, m: set_argument(m, "renew_loan", "loan_id", "L-999"))
    result = await play(sandbox, catalog, agent, task)
    assert (result["reward"], result["reason"]) == (0.0, "state_mismatch")
    tool_outputs = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert any("error" in out for out in tool_outputs)


async def test_max_turns_is_enforced(demo_tasks: DemoTasks, sandbox, catalog):
    task = demo_tasks.task("library-renewals")
    agent = LoopingAgent("find_member", {"card_number": "2300-1187-42"})
    result = await play(sandbox, catalog, agent, task, max_turns=5)
    assert (result["status"], result["reward"], result["reason"]) == ("scored", 0.0, "max_turns")
    assert result["info"]["turns"] == 5 and result["info"]["tool_calls"] == 5


async def test_token_budget_is_enforced(demo_tasks: DemoTasks, sandbox, catalog):
    task = demo_tasks.task("library-renewals")
    agent = LoopingAgent("find_member", {"card_number": "2300-1187-42"})
    result = await play(sandbox, catalog, agent, task, token_budget=250)
    assert (result["reward"], result["reason"]) == (0.0, "token_budget")
    assert result["info"]["turns"] == 3


async def test_time_budget_is_enforced(demo_tasks: DemoTasks, sandbox, catalog):
    from eval_agents import SlowAgent

    task = demo_tasks.task("library-renewals")
    result = await play(sandbox, catalog, SlowAgent(), task, time_budget_s=0.5)
    assert (result["status"], result["reward"], result["reason"]) == ("scored", 0.0, "time_budget")


async def test_invalid_arguments_are_shown_to_the_agent_not_run(
    demo_tasks: DemoTasks, sandbox, catalog
):
    task = demo_tasks.task("library-renewals")
    env = TaskEnvironment(sandbox, catalog)
    await env.reset(task)
    call = {
        "id": "x1",
        "type": "function",
        "function": {"name": "renew_loan", "arguments": '{"loan_id": 5}'},
    }
    observation, reward, terminated, truncated, _info = await env.step(
        {"role": "assistant", "content": None, "tool_calls": [call]}
    )
    [tool] = observation["messages"]
    assert tool["tool_call_id"] == "x1" and "error" in tool["content"]
    unknown = {"id": "x2", "type": "function", "function": {"name": "drop_db", "arguments": "{}"}}
    observation, *_ = await env.step(
        {"role": "assistant", "content": None, "tool_calls": [unknown]}
    )
    assert "undefined tool" in observation["messages"][0]["content"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    await env.close()
