"""Playing an episode with an agent built in another framework (LangGraph, LangChain).

The framework's agent gets `environment_tools(task, env)`, so its tool calls run in the
episode's sandbox. Each user turn, the agent graph is invoked on the conversation so far
and runs until it answers in text; that text goes to `env.step`, whose user answers.
"""

from __future__ import annotations

from typing import Any

from gem_graph.eval.environment import TaskEnvironment
from gem_graph.eval.task import EvalTask


async def run_graph_episode(env: TaskEnvironment, graph: Any, task: EvalTask) -> dict[str, Any]:
    """Play `task` with a compiled LangGraph agent taking and returning `{"messages"}` (e.g.
    `create_react_agent(model, environment_tools(task, env))`, built after `env.reset`).

    Returns `env.info()` at the end (with the reward); the caller resets `env` first.
    """
    from langchain_core.messages import AIMessage, convert_to_messages

    if env.task is None or env.task.id != task.id:
        raise ValueError("reset the environment with this task first")
    history: list[Any] = convert_to_messages(env.messages)
    while not env.done:
        seen = len(history)
        try:
            out = await graph.ainvoke({"messages": history})
        except Exception:
            if env.done:  # a cap ended the episode while the graph was still calling tools
                break
            raise
        history = list(out["messages"])
        env.add_tokens(
            sum(
                int((getattr(m, "usage_metadata", None) or {}).get("total_tokens") or 0)
                for m in history[seen:]
                if isinstance(m, AIMessage)
            )
        )
        if env.done:
            break
        last = history[-1] if history else None
        text = last.text if isinstance(last, AIMessage) else ""
        observation, *_ = await env.step({"role": "assistant", "content": text})
        history.extend(convert_to_messages(observation["messages"]))
    return env.info()
