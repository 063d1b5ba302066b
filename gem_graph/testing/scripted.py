"""A scripted chat model for tests and the offline demo. Its answers are written by hand.

The reply is chosen from the request itself (stage, document id, attempt, carried as run
metadata by every stage call), never from a shared queue, so concurrent documents get
deterministic answers. It supports `bind_tools`, so `with_structured_output` exercises
the real parsers: a valid reply parses, a bad one is a parse error, prose gives `None`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

Reply = str | dict[str, Any] | BaseException


@dataclass(frozen=True)
class ScriptKey:
    """What a scripted reply is chosen by."""

    stage: str
    doc_id: str
    attempt: int


@dataclass
class ScriptedCall:
    """A request the scripted model received, for assertions."""

    key: ScriptKey
    messages: list[BaseMessage]

    @property
    def prompt_text(self) -> str:
        return "\n".join(str(m.content) for m in self.messages)


Responder = Callable[[ScriptKey, list[BaseMessage]], Reply]


def table_responder(table: Mapping[tuple[str, str], Sequence[Reply] | Reply]) -> Responder:
    """Answer from `{(stage, doc_id): reply or [reply for attempt 1, attempt 2, ...]}`.

    `doc_id` may be "*" to answer every document. A list is indexed by attempt; the last
    entry answers any later attempt.
    """

    def respond(key: ScriptKey, _messages: list[BaseMessage]) -> Reply:
        entry = table.get((key.stage, key.doc_id), table.get((key.stage, "*")))
        if entry is None:
            raise LookupError(f"no scripted reply for stage={key.stage!r} doc={key.doc_id!r}")
        if isinstance(entry, str | dict | BaseException):
            return entry
        replies = list(entry)
        return replies[min(key.attempt, len(replies)) - 1]

    return respond


class ScriptedChatModel(BaseChatModel):
    """Chat model answering from a script keyed by (stage, document, attempt)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responder: Responder
    model_name: str = "scripted"
    calls: list[ScriptedCall] = Field(default_factory=list)
    tokens_per_char: float = 0.25

    @property
    def _llm_type(self) -> str:
        return "gem-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def calls_for(self, stage: str, doc_id: str | None = None) -> list[ScriptedCall]:
        return [c for c in self.calls if c.key.stage == stage and doc_id in (None, c.key.doc_id)]

    def _answer(
        self, messages: list[BaseMessage], metadata: Mapping[str, Any], **kwargs: Any
    ) -> ChatResult:
        key = ScriptKey(
            stage=str(metadata.get("gem_stage", "?")),
            doc_id=str(metadata.get("gem_doc_id", "?")),
            attempt=int(metadata.get("gem_attempt", 1)),
        )
        self.calls.append(ScriptedCall(key, list(messages)))
        reply = self.responder(key, list(messages))
        if isinstance(reply, BaseException):
            raise reply
        text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        tools = kwargs.get("tools") or []
        message: AIMessage
        if tools and isinstance(reply, dict):
            name = tools[0]["function"]["name"]
            message = AIMessage(
                content="",
                tool_calls=[{"name": name, "args": reply, "id": f"call_{len(self.calls)}"}],
            )
        else:
            message = AIMessage(content=text)
        prompt_chars = sum(len(str(m.content)) for m in messages)
        message.usage_metadata = {
            "input_tokens": int(prompt_chars * self.tokens_per_char) + 1,
            "output_tokens": int(len(text) * self.tokens_per_char) + 1,
            "total_tokens": int((prompt_chars + len(text)) * self.tokens_per_char) + 2,
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        metadata = getattr(run_manager, "metadata", None) or {}
        return self._answer(messages, metadata, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        metadata = getattr(run_manager, "metadata", None) or {}
        return self._answer(messages, metadata, **kwargs)
