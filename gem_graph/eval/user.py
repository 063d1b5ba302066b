"""The user side of an episode: a scripted user replaying the reference's user turns, or an
LLM simulator playing the task's goal. Either ends the conversation with `STOP`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gem_graph.eval.task import EvalTask

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

STOP = "###STOP###"
"""The marker a simulated user writes when the conversation is over."""
USER_PROMPT = "eval_user"


@dataclass(frozen=True)
class UserReply:
    """What the user says next; `stop` ends the episode. `tokens` spent producing it."""

    text: str
    stop: bool
    tokens: int = 0


class UserSimulator(Protocol):
    """Opens the conversation and answers each assistant turn that is not a tool call."""

    name: str

    async def opening(self, task: EvalTask) -> UserReply: ...

    async def reply(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply: ...


class ScriptedUser:
    """Says the reference dialogue's user turns in order, then stops (deterministic)."""

    name = "scripted"

    async def opening(self, task: EvalTask) -> UserReply:
        return UserReply(task.instruction, stop=False)

    async def reply(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply:
        said = sum(1 for m in messages if m.get("role") == "user")
        turns = task.user_turns or [task.instruction]
        if said >= len(turns):
            return UserReply("", stop=True)
        return UserReply(turns[said], stop=False)


def goal_text(task: EvalTask) -> str:
    """The goal as the simulator's prompt states it; a task without one falls back to its
    user turns, which say what the user asked for."""
    goal = task.user_goal
    if goal is None:
        turns = "\n".join(f"- {turn}" for turn in (task.user_turns or [task.instruction]))
        return f"You want what these messages of yours ask for, in this order:\n{turns}"
    lines = [f"Who you are: {goal.persona}", f"What you want: {goal.wants}"]
    lines += [f"You know, and give when asked: {fact}" for fact in goal.known_facts]
    lines += [f"You accept: {item}" for item in goal.accepts]
    lines += [f"You refuse: {item}" for item in goal.refuses]
    return "\n".join(lines)


def _tokens(message: Any) -> int:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("total_tokens") or 0)


class LLMUser:
    """A chat model playing the user: it sees the assistant's words as the other side."""

    name = "llm"

    def __init__(self, llm: BaseChatModel, *, seed: int | None = None) -> None:
        from gem_graph.prompts import load_prompt

        self.llm = llm
        self.seed = seed
        self.prompt = load_prompt(USER_PROMPT)

    async def opening(self, task: EvalTask) -> UserReply:
        return await self._say(task, [])

    async def reply(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply:
        return await self._say(task, messages)

    async def _say(self, task: EvalTask, messages: list[dict[str, Any]]) -> UserReply:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        from gem_graph.llm import message_text

        rendered = self.prompt.render(goal=goal_text(task), stop=STOP)
        chat: list[Any] = [
            SystemMessage(rendered[0]["content"]),
            HumanMessage(rendered[1]["content"]),
        ]
        for message in messages:
            content = message.get("content")
            if not isinstance(content, str) or not content:
                continue
            if message.get("role") == "user":
                chat.append(AIMessage(content))
            elif message.get("role") == "assistant":
                chat.append(HumanMessage(content))
        model = self.llm.bind(seed=self.seed) if self.seed is not None else self.llm
        answer = await model.ainvoke(chat)
        text = message_text(answer)
        stop = STOP in text
        return UserReply(text.replace(STOP, "").strip(), stop=stop, tokens=_tokens(answer))


def describe(user: UserSimulator) -> dict[str, Any]:
    """What is stored with every result about the user side (model, seed, prompt)."""
    if isinstance(user, LLMUser):
        model = getattr(user.llm, "model_name", None) or getattr(user.llm, "model", None)
        return {"kind": "llm", "model": str(model), "seed": user.seed, "prompt": user.prompt.key}
    return {"kind": user.name}


__all__ = ["STOP", "LLMUser", "ScriptedUser", "UserReply", "UserSimulator", "describe", "goal_text"]
