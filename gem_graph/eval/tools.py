"""`environment_tools`: a task's tools as LangChain tools that execute in the sandbox.

Hand them to any LangChain or LangGraph agent (e.g. `create_react_agent`) unchanged: each
call runs in the episode of the `TaskEnvironment` that was reset with the task, joins its
transcript, and returns the tool message content (JSON, or `{"error": ...}`). Arguments
are validated against the tool's JSON Schema by the environment, as for any agent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gem_graph.eval.task import EvalTask

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from gem_graph.eval.environment import TaskEnvironment


def environment_tools(task: EvalTask, env: TaskEnvironment) -> list[BaseTool]:
    """The task's tools bound to `env`'s current episode (`env.reset(task)` first)."""
    from langchain_core.tools import StructuredTool

    if env.task is None or env.task.id != task.id:
        raise ValueError("reset the environment with this task before asking for its tools")
    counter = itertools.count(1)
    tools: list[BaseTool] = []
    for spec in env.tools:  # the trusted environment's specs (reset checked they match)
        function = spec.get("function") if isinstance(spec, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        name = function["name"]
        schema = function.get("parameters") or {"type": "object", "properties": {}}

        tools.append(
            StructuredTool(
                name=name,
                description=str(function.get("description") or name),
                args_schema=dict(schema),
                coroutine=_caller(env, name, counter),
            )
        )
    return tools


def _caller(env: TaskEnvironment, name: str, counter: Iterator[int]) -> Any:
    """The coroutine behind one tool: a call in `env`'s episode under a fresh call id."""

    async def call(**arguments: Any) -> str:
        return await env.call_tool(name, arguments, f"lc_{next(counter)}")

    return call
