"""The agents `gem-graph eval` plays: the gold replay agent and any tool-calling chat model.

An agent answers the conversation so far with one assistant message in OpenAI chat format
(text, or `tool_calls`), plus the tokens it spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gem_graph.eval.task import EvalTask

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


@dataclass(frozen=True)
class AgentTurn:
    """One assistant message and the model tokens it cost."""

    message: dict[str, Any]
    tokens: int = 0


class Agent(Protocol):
    """Answers a conversation with the next assistant message."""

    name: str

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn: ...

    def describe(self) -> dict[str, Any]: ...


class GoldAgent:
    """Replays the task's reference dialogue: its n-th assistant turn at the n-th step.

    With the scripted user it reproduces the verified trajectory, so it must score 1.0 on
    every kept task; a task it fails is a broken task, not a weak agent.
    """

    name = "gold"

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        reference = [m for m in task.reference_messages if m.get("role") == "assistant"]
        index = _assistant_steps(messages)
        if index >= len(reference):
            return AgentTurn({"role": "assistant", "content": ""})
        turn = reference[index]
        message: dict[str, Any] = {"role": "assistant", "content": turn.get("content")}
        if turn.get("tool_calls"):
            message["tool_calls"] = turn["tool_calls"]
        return AgentTurn(message)

    def describe(self) -> dict[str, Any]:
        return {"kind": "gold"}


def _assistant_steps(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m.get("role") == "assistant")


class ChatModelAgent:
    """A tool-calling chat model (any OpenAI-compatible `ChatOpenAI`) with the task's tools."""

    name = "model"

    def __init__(self, llm: BaseChatModel, *, seed: int | None = None) -> None:
        self.llm = llm
        self.seed = seed

    async def act(self, task: EvalTask, messages: list[dict[str, Any]]) -> AgentTurn:
        from langchain_core.messages import convert_to_openai_messages

        model: Any = self.llm.bind_tools(task.tools) if task.tools else self.llm
        if self.seed is not None:
            model = model.bind(seed=self.seed)
        answer = await model.ainvoke(_history(messages))
        converted = convert_to_openai_messages(answer)
        assert isinstance(converted, dict)
        message: dict[str, Any] = {"role": "assistant", "content": converted.get("content")}
        if isinstance(message["content"], list):  # content blocks: keep the text
            message["content"] = "".join(
                str(b.get("text", "")) for b in message["content"] if isinstance(b, dict)
            )
        calls = list(converted.get("tool_calls") or [])
        for call in getattr(answer, "invalid_tool_calls", None) or []:
            # arguments that were not JSON: kept raw, so the environment answers the agent
            # with `malformed_arguments` instead of the call silently vanishing
            calls.append({"id": call.get("id"), "type": "function", "function": {
                "name": call.get("name"), "arguments": call.get("args") or ""}})  # fmt: skip
        for index, call in enumerate(calls):
            if isinstance(call, dict) and not call.get("id"):  # some servers send none
                call["id"] = f"call_{len(messages)}_{index}"
        if calls:
            message["tool_calls"] = calls
        usage = getattr(answer, "usage_metadata", None) or {}
        return AgentTurn(message, int(usage.get("total_tokens") or 0))

    def describe(self) -> dict[str, Any]:
        model = getattr(self.llm, "model_name", None) or getattr(self.llm, "model", None)
        return {"kind": "model", "model": str(model), "seed": self.seed}


def _history(messages: list[dict[str, Any]]) -> list[Any]:
    """The transcript as LangChain messages; a call whose arguments were not JSON goes back
    to the model as the invalid call it made (LangChain would raise parsing it)."""
    from langchain_core.messages import AIMessage, convert_to_messages

    from gem_graph.checks.arguments import parse_arguments

    out: list[Any] = []
    for message in messages:
        calls = message.get("tool_calls") or []
        raws = [c.get("function", {}).get("arguments") for c in calls if isinstance(c, dict)]
        if message.get("role") != "assistant" or all(
            isinstance(raw, str) and parse_arguments(raw) is not None for raw in raws
        ):
            out.extend(convert_to_messages([message]))
            continue
        valid, invalid = [], []
        for call in calls:
            function = call.get("function") or {}
            raw = function.get("arguments")
            parsed = parse_arguments(raw) if isinstance(raw, str) else None
            entry = {"name": str(function.get("name")), "id": call.get("id")}
            if parsed is None:
                invalid.append({**entry, "args": str(raw), "error": None})
            else:
                valid.append({**entry, "args": parsed})
        content = message.get("content") or ""
        out.append(AIMessage(content=content, tool_calls=valid, invalid_tool_calls=invalid))
    return out
