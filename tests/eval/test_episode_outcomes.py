"""Who an episode's end is blamed on: infrastructure (`failed`, retried) or the agent (0)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from eval_agents import DemoTasks, LoopingAgent, ScriptAgent

from gem_graph.eval.agents import AgentTurn, ChatModelAgent, GoldAgent
from gem_graph.eval.catalog import EnvironmentCatalog
from gem_graph.eval.environment import EpisodeLimits, TaskEnvironment
from gem_graph.eval.runner import run_episode
from gem_graph.eval.task import EvalTask
from gem_graph.eval.user import UserReply
from gem_graph.sandbox import Sandbox
from gem_graph.settings import SandboxSettings


class HangingSandbox:
    """A sandbox that never opens an episode."""

    async def open_episode(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3600)


class HangingUser:
    """A user simulator whose endpoint never answers."""

    name = "hang"

    async def opening(self, task: EvalTask) -> UserReply:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def reply(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class _SlowClose:
    """An episode whose close hangs after really closing."""

    def __init__(self, episode: Any) -> None:
        self._episode = episode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._episode, name)

    async def close(self) -> None:
        await self._episode.close()
        await asyncio.sleep(3600)


class SlowCloseSandbox:
    """The real sandbox, with episodes that hang when closed."""

    def __init__(self, box: Sandbox) -> None:
        self.box, self.settings = box, box.settings

    async def open_episode(self, *args: Any, **kwargs: Any) -> Any:
        return _SlowClose(await self.box.open_episode(*args, **kwargs))


async def test_a_hanging_sandbox_or_user_is_failed_not_the_agents_zero(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    limits = EpisodeLimits(time_budget_s=0.5)
    env = TaskEnvironment(HangingSandbox(), catalog, limits=limits)  # type: ignore[arg-type]
    result = await run_episode(env, GoldAgent(), task)
    assert (result["status"], result["reward"]) == ("failed", None)
    assert "sandbox" in result["detail"]
    env = TaskEnvironment(sandbox, catalog, user=HangingUser(), limits=limits)
    result = await run_episode(env, GoldAgent(), task)
    assert (result["status"], result["reward"]) == ("failed", None)
    assert "user" in result["detail"]


async def test_an_episode_that_ended_keeps_its_score_when_closing_times_out(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    box: Any = SlowCloseSandbox(sandbox)
    env = TaskEnvironment(box, catalog, limits=EpisodeLimits(max_turns=2, time_budget_s=1))
    agent = LoopingAgent("find_member", {"card_number": "2300-1187-42"})
    result = await run_episode(env, agent, task)
    assert (result["status"], result["reward"], result["reason"]) == ("scored", 0.0, "max_turns")


async def test_a_sandbox_deadline_shorter_than_the_budget_is_refused(
    demo_tasks: DemoTasks, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    async with Sandbox(SandboxSettings(episode_timeout_s=2)) as box:
        env = TaskEnvironment(box, catalog)  # the default budget is 300 s
        with pytest.raises(ValueError, match="episode_timeout_s"):
            await env.reset(task)
        with pytest.raises(ValueError, match="episode_timeout_s"):
            await run_episode(env, GoldAgent(), task)


async def test_the_sandbox_episode_deadline_is_the_time_budget_not_a_crash(
    demo_tasks: DemoTasks, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    find = {"id": "f", "type": "function", "function": {"name": "find_member",
            "arguments": json.dumps({"card_number": "2300-1187-42"})}}  # fmt: skip
    async with Sandbox(SandboxSettings(episode_timeout_s=1.5)) as box:
        env = TaskEnvironment(box, catalog, limits=EpisodeLimits(time_budget_s=1.5))
        await env.reset(task)
        info: dict[str, Any] = {}
        while not env.done:
            await asyncio.sleep(0.6)  # a model thinking
            *_, info = await env.step({"role": "assistant", "content": None,
                                       "tool_calls": [find]})  # fmt: skip
    assert info["reward"]["reason"] == "time_budget"


class _Raises:
    name = "raises"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        raise self.error

    def describe(self) -> dict[str, Any]:
        return {"kind": "raises"}


async def test_an_agents_own_error_scores_zero_and_transport_errors_fail(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    import httpx

    task = demo_tasks.task("library-renewals")
    result = await run_episode(TaskEnvironment(sandbox, catalog), _Raises(KeyError("id")), task)
    assert (result["status"], result["reward"], result["reason"]) == ("scored", 0.0, "agent_error")
    assert "KeyError" in result["detail"]
    error = httpx.ConnectError("refused")
    result = await run_episode(TaskEnvironment(sandbox, catalog), _Raises(error), task)
    assert (result["status"], result["reward"]) == ("failed", None)


class _FakeModel:
    """A chat model answering with fixed `AIMessage`s, tools bound or not."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def bind_tools(self, tools: Any) -> _FakeModel:
        return self

    async def ainvoke(self, messages: Any) -> Any:
        return self.answers.pop(0) if self.answers else self.last

    @property
    def last(self) -> Any:
        from langchain_core.messages import AIMessage

        return AIMessage(content="done")


async def test_model_calls_without_an_id_or_with_broken_json_reach_the_environment(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    from langchain_core.messages import AIMessage

    task = demo_tasks.task("library-renewals")
    no_id = AIMessage(content="", tool_calls=[{"name": "find_member",
                      "args": {"card_number": "2300-1187-42"}, "id": None}])  # fmt: skip
    broken = AIMessage(content="", invalid_tool_calls=[{"name": "find_member", "args": "{bad",
                       "id": "b1", "error": None, "type": "invalid_tool_call"}])  # fmt: skip
    agent = ChatModelAgent(_FakeModel([no_id, broken]))  # type: ignore[arg-type]
    result = await run_episode(TaskEnvironment(sandbox, catalog), agent, task)
    assert result["status"] == "scored" and result["reason"] == "state_mismatch"
    calls = [c for m in result["messages"] for c in m.get("tool_calls") or []]
    assert len(calls) == 2 and all(c["id"] for c in calls)
    tool_out = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert "Priya" in tool_out[0]
    assert "strict JSON" in json.loads(tool_out[1])["error"]  # malformed_arguments


class _StopsAtOnce:
    name = "stop"

    async def opening(self, task: EvalTask) -> UserReply:
        return UserReply("", stop=True)

    async def reply(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply:
        return UserReply("hello?", stop=False)


async def test_a_user_who_stops_in_the_opening_ends_the_episode(
    demo_tasks: DemoTasks, sandbox: Sandbox, catalog: EnvironmentCatalog
):
    task = demo_tasks.task("library-renewals")
    env = TaskEnvironment(sandbox, catalog, user=_StopsAtOnce())
    observation = await env.reset(task)
    assert env.done and env.result is not None and env.result.reason == "state_mismatch"
    assert [m["role"] for m in observation["messages"]] == ["system"]
    with pytest.raises(RuntimeError, match="over"):
        await env.step({"role": "assistant", "content": "hi"})
    result = await run_episode(
        TaskEnvironment(sandbox, catalog, user=_StopsAtOnce()), ScriptAgent([]), task
    )
    assert (result["status"], result["info"]["turns"]) == ("scored", 0)


def test_a_timeout_is_blamed_on_whoever_took_the_budget():
    from gem_graph.eval.runner import _agents_time

    env = TaskEnvironment(None, None)  # type: ignore[arg-type]
    env.waiting, env.waited = "sandbox", {"agent": 290.0, "sandbox": 10.0}
    assert _agents_time(env)  # a slow agent, cut during a quick tool call
    env.waiting, env.waited = "user", {"agent": 5.0, "user": 295.0}
    assert not _agents_time(env)  # the user simulator hung
    env.waiting, env.waited = None, {}
    assert not _agents_time(env)  # never started
