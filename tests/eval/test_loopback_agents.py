"""Real `ChatOpenAI` agents over HTTP on 127.0.0.1: the model agent, the LLM user
simulator, and a LangGraph prebuilt agent given `environment_tools`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eval_agents import DemoTasks

from gem_graph.eval.agents import ChatModelAgent
from gem_graph.eval.environment import EpisodeLimits, TaskEnvironment
from gem_graph.eval.frameworks import run_graph_episode
from gem_graph.eval.runner import run_episode
from gem_graph.eval.task import EvalTask
from gem_graph.eval.tools import environment_tools
from gem_graph.eval.user import STOP, LLMUser
from gem_graph.llm import make_chat_model
from gem_graph.settings import ModelSettings
from gem_graph.testing.openai_server import Answer, LoopbackOpenAIServer
from gem_graph.testing.quirks import is_probe_request, probe_answer

pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


def is_user_simulator(request: dict[str, Any]) -> bool:
    first = request["messages"][0]
    return first["role"] == "system" and "role-playing" in str(first["content"])


def responder(task: EvalTask) -> Any:
    """Agent requests get the reference's next assistant turn; the simulator's requests get
    the reference's next user turn, then a goodbye with the stop marker."""
    turns = [m for m in task.reference_messages if m["role"] == "assistant"]

    def respond(request: dict[str, Any]) -> Answer:
        said = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if is_user_simulator(request):
            if said < len(task.user_turns):
                return Answer(content=task.user_turns[said], prompt_tokens=50, completion_tokens=5)
            return Answer(content=f"Thanks, bye. {STOP}", prompt_tokens=50, completion_tokens=5)
        assert request.get("tools"), "the agent's request carries the task's tools"
        turn = turns[min(said, len(turns) - 1)]
        if turn.get("tool_calls"):
            [call] = turn["tool_calls"]
            arguments = json.loads(call["function"]["arguments"])
            return Answer(
                tool_call=(call["function"]["name"], arguments),
                prompt_tokens=100,
                completion_tokens=10,
            )
        return Answer(content=turn["content"], prompt_tokens=100, completion_tokens=10)

    return respond


def model(server: LoopbackOpenAIServer) -> Any:
    return make_chat_model(ModelSettings(name="loopback", base_url=server.base_url, timeout_s=10))


async def test_chat_openai_agent_and_llm_user_over_http(
    demo_tasks: DemoTasks, sandbox, catalog, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    task = demo_tasks.task("library-renewals")
    with LoopbackOpenAIServer(responder(task)) as server:
        llm = model(server)
        env = TaskEnvironment(sandbox, catalog, user=LLMUser(llm, seed=3))
        result = await run_episode(env, ChatModelAgent(llm, seed=7), task)
        requests = [r["json"] for r in server.requests]
    assert (result["status"], result["reward"], result["reason"]) == ("scored", 1.0, "ok")
    agent_requests = [r for r in requests if not is_user_simulator(r)]
    assert {t["function"]["name"] for t in agent_requests[0]["tools"]} == {
        t["function"]["name"] for t in task.tools
    }
    assert all(r.get("seed") == 7 for r in agent_requests)
    assert any(m.get("role") == "tool" for m in agent_requests[-1]["messages"])
    assert result["info"]["tokens"] > 0
    assert result["messages"][-1] == {"role": "user", "content": "Thanks, bye."}


async def test_langgraph_prebuilt_agent_through_environment_tools(
    demo_tasks: DemoTasks, sandbox, catalog, monkeypatch
):
    from langgraph.prebuilt import create_react_agent

    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    task = demo_tasks.task("clinic-booking")
    with LoopbackOpenAIServer(responder(task)) as server:
        env = TaskEnvironment(sandbox, catalog)
        await env.reset(task)
        graph = create_react_agent(model(server), environment_tools(task, env))
        info = await run_graph_episode(env, graph, task)
    assert info["reward"]["reward"] == 1.0, info["reward"]
    assert info["tool_calls"] == sum(
        len(m.get("tool_calls") or []) for m in task.reference_messages
    )


async def test_langgraph_agent_is_cut_at_max_turns(
    demo_tasks: DemoTasks, sandbox, catalog, monkeypatch
):
    from langgraph.prebuilt import create_react_agent

    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    task = demo_tasks.task("clinic-booking")
    with LoopbackOpenAIServer(responder(task)) as server:
        env = TaskEnvironment(sandbox, catalog, limits=EpisodeLimits(max_turns=3))
        await env.reset(task)
        graph = create_react_agent(model(server), environment_tools(task, env))
        info = await run_graph_episode(env, graph, task)
    assert info["reward"]["reason"] == "max_turns"
    assert info["turns"] == 3


def test_cli_evaluates_a_model_agent_with_a_model_user_over_http(
    demo_tasks: DemoTasks, tmp_path, monkeypatch, capsys
):
    from gem_graph.cli import main
    from gem_graph.eval.store import EvalStore

    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    by_system = {task.system: responder(task) for task in demo_tasks.tasks.values()}

    def respond(request: dict[str, Any]) -> Answer:
        if (probe := probe_answer(request)) is not None:  # each server is probed first
            return probe
        if is_user_simulator(request):  # the goal in the simulator's prompt names the task
            prompt = request["messages"][0]["content"]
            task = next(t for t in demo_tasks.tasks.values() if t.user_goal.persona in prompt)
            return by_system[task.system](request)
        return by_system[request["messages"][0]["content"]](request)

    out = tmp_path / "ev"
    with LoopbackOpenAIServer(respond) as server:
        code = main(["eval", str(demo_tasks.tasks_file), "--agent-model", "agent-m",
                     "--user-model", "user-m", "--base-url", server.base_url,
                     "--trials", "2", "--seed", "5", "-o", str(out)])  # fmt: skip
        models = {r["json"]["model"] for r in server.requests}
        played = [r["json"] for r in server.requests if not is_probe_request(r["json"])]
    assert code == 0, capsys.readouterr().out
    assert {r.get("max_completion_tokens") for r in played} == {2048}  # every reply capped
    assert models == {"agent-m", "user-m"}
    with EvalStore(out) as store:
        results = store.results()
    assert len(results) == 6 and all(r["reward"] == 1.0 for r in results)
    config = results[0]["config"]
    assert config["agent"] == {"kind": "model", "model": "agent-m"}
    assert config["user"]["model"] == "user-m" and config["user"]["prompt"] == "eval_user@1"
    assert config["seed"] == 5 and config["limits"]["max_turns"] == 30
    assert (config["temperature"], config["max_tokens"]) == (0.0, 2048)
    assert config["base_url"] == config["user_base_url"] == server.base_url
    assert len(config["tasks_sha256"]) == 64 and config["environment_roots"]
    assert (out / "summary.json").is_file()
