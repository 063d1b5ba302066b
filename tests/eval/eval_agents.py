"""Test helpers: the demo tasks' holder, and scripted agents (the reference with one
thing changed, a loop, a crash, a sleeper)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gem_graph.eval.agents import AgentTurn
from gem_graph.eval.task import EvalTask


@dataclass(frozen=True)
class DemoTasks:
    run_dir: Path
    tasks_file: Path
    tasks: dict[str, EvalTask]

    @property
    def environments(self) -> Path:
        return self.run_dir / "environments"

    def task(self, prefix: str) -> EvalTask:
        return next(t for key, t in self.tasks.items() if key.startswith(prefix))


class ScriptAgent:
    """Says its `script` of assistant messages in order, then an empty text turn."""

    name = "script"

    def __init__(self, script: list[dict[str, Any]]) -> None:
        self.script = script

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        index = sum(1 for m in messages if m.get("role") == "assistant")
        if index >= len(self.script):
            return AgentTurn({"role": "assistant", "content": ""})
        return AgentTurn(dict(self.script[index]), tokens=10)

    def describe(self) -> dict[str, Any]:
        return {"kind": "script"}


def assistant_turns(task: EvalTask, edit: Callable[[int, dict[str, Any]], None]) -> ScriptAgent:
    """The reference's assistant turns, each passed to `edit(index, message)` first."""
    turns = [json.loads(json.dumps(m)) for m in task.reference_messages]
    turns = [m for m in turns if m["role"] == "assistant"]
    for index, message in enumerate(turns):
        edit(index, message)
    return ScriptAgent(turns)


def set_argument(message: dict[str, Any], tool: str, key: str, value: Any) -> None:
    """In `message`, give every call of `tool` the argument `key=value`."""
    for call in message.get("tool_calls") or []:
        if call["function"]["name"] == tool:
            arguments = json.loads(call["function"]["arguments"])
            arguments[key] = value
            call["function"]["arguments"] = json.dumps(arguments)


class LoopingAgent:
    """Calls a read tool forever."""

    name = "loop"

    def __init__(self, tool: str, arguments: dict[str, Any]) -> None:
        self.tool, self.arguments = tool, arguments

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        n = len(messages)
        call = {
            "id": f"c{n}",
            "type": "function",
            "function": {"name": self.tool, "arguments": json.dumps(self.arguments)},
        }
        return AgentTurn({"role": "assistant", "content": None, "tool_calls": [call]}, tokens=100)

    def describe(self) -> dict[str, Any]:
        return {"kind": "loop"}


class CrashingAgent:
    """Raises on its first turn (a broken agent or endpoint)."""

    name = "crash"

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        raise ConnectionError("the agent's endpoint went away")

    def describe(self) -> dict[str, Any]:
        return {"kind": "crash"}


class SlowAgent:
    """Sleeps longer than any test's time budget."""

    name = "slow"

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    def describe(self) -> dict[str, Any]:
        return {"kind": "slow"}
