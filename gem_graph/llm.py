"""Model construction, the structured-call helper and per-stage usage accounting.

`StructuredLLM` asks any `BaseChatModel` for an answer matching a pydantic model. It walks
a ladder of methods (json_schema → function_calling → JSON in text) only when a server
cannot do a method; a bad answer is never retried here: it comes back as an `error` that
the stage turns into feedback for its next attempt. Transport errors propagate so the
graph's retry policy can retry the retryable ones.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, SecretStr, ValidationError

from gem_graph.contracts.record import Usage
from gem_graph.settings import ModelSettings, Settings, StructuredMethod

T = TypeVar("T", bound=BaseModel)

LADDER: tuple[StructuredMethod, ...] = ("json_schema", "function_calling", "json_text")
_MAX_ERROR_CHARS = 1500


class UsageEntry(TypedDict):
    stage: str
    calls: int
    input_tokens: int
    output_tokens: int
    seconds: float


def make_chat_model(settings: ModelSettings | None = None) -> BaseChatModel:
    """Build `ChatOpenAI` for any OpenAI-compatible endpoint.

    The API key comes only from `OPENAI_API_KEY` (servers that need none get "EMPTY").
    Client retries are off: the graph's retry policy is the one retry layer. Without
    `settings`, the model section of `Settings()` (so `GEM_MODEL` and other `GEM_*`).
    """
    from langchain_openai import ChatOpenAI

    settings = settings or Settings().model
    return ChatOpenAI(
        model=settings.name,
        base_url=settings.base_url,
        api_key=SecretStr(os.environ.get("OPENAI_API_KEY") or "EMPTY"),
        temperature=settings.temperature,
        max_completion_tokens=settings.max_tokens,
        timeout=settings.timeout_s,
        max_retries=0,
        stream_usage=True,
        use_responses_api=False,
        http_async_client=_aiohttp_client(settings) if settings.http_client == "aiohttp" else None,
    )


def _aiohttp_client(settings: ModelSettings) -> Any:
    """The OpenAI SDK's aiohttp-backed client, or a clear error when aiohttp is missing."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ImportError(
            "http_client = 'aiohttp' needs aiohttp: pip install 'gem-graph[aiohttp]'"
        ) from None
    from openai import DefaultAioHttpClient

    return DefaultAioHttpClient(timeout=settings.timeout_s)


async def aclose_chat_model(llm: BaseChatModel) -> None:
    """Close the HTTP client that `make_chat_model` gave `llm` (only aiohttp has one of its
    own; LangChain's default httpx client is shared and stays open)."""
    client = getattr(llm, "http_async_client", None)
    if client is not None:
        await client.aclose()


def is_retryable(error: BaseException) -> bool:
    """True for transport failures worth retrying: rate limits, timeouts, 5xx, lost connections."""
    flag = getattr(error, "is_retryable", None)
    if isinstance(flag, bool):
        return flag
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    name = type(error).__name__
    return name in {
        "APITimeoutError",
        "APIConnectionError",
        "ConnectError",
        "ReadTimeout",
        "RemoteProtocolError",
        "TimeoutException",
        "ConnectTimeout",
    }


class MalformedResponseError(Exception):
    """The server's reply could not be read as a chat completion (truncated, not JSON, …).

    Treated as a transient transport failure: proxies and overloaded servers produce these.
    """

    is_retryable = True


async def invoke_model(
    runnable: Any, messages: list[dict[str, str]], config: RunnableConfig | None
) -> Any:
    """Call a model; an unreadable server reply becomes a retryable `MalformedResponseError`."""
    try:
        return await runnable.ainvoke(messages, config=config)
    except Exception as exc:
        if hasattr(exc, "is_retryable") or isinstance(getattr(exc, "status_code", None), int):
            raise
        if isinstance(exc, NotImplementedError):
            raise
        raise MalformedResponseError(
            f"the model server sent an unreadable response ({type(exc).__name__}: {exc})"
        ) from exc


def _speaks_openai(llm: BaseChatModel) -> bool:
    """True for langchain-openai clients (ChatOpenAI and subclasses), which take `extra_body`."""
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    return isinstance(llm, BaseChatOpenAI)


def _is_unsupported(error: BaseException) -> bool:
    """True when the server or model cannot do a structured-output method at all."""
    if isinstance(error, NotImplementedError):
        return True
    status = getattr(error, "status_code", None)
    return status in {400, 404, 422} and not is_retryable(error)


@dataclass
class StructuredResult(Generic[T]):
    """One structured call: the parsed answer or a feedback-ready error, plus its usage."""

    parsed: T | None
    error: str | None
    raw_text: str
    usage: UsageEntry
    method: str


def extract_json_object(text: str) -> str:
    """Pull the JSON object out of a prose answer (fences, think blocks, leading chatter)."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL).strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, flags=re.DOTALL)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def message_text(message: BaseMessage | None) -> str:
    """The text of a reply, or its first tool call's arguments as JSON when it has no text."""
    if message is None:
        return ""
    content = message.content
    if isinstance(content, str):
        text = content
    else:
        text = "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    calls = getattr(message, "tool_calls", None) or []
    if calls and not text:
        text = json.dumps(calls[0].get("args", {}), ensure_ascii=False)
    return text


def usage_entry(stage: str, message: BaseMessage | None, seconds: float) -> UsageEntry:
    """One model call's usage record, from the reply's `usage_metadata`."""
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "stage": stage,
        "calls": 1,
        "input_tokens": int(meta.get("input_tokens", 0) or 0),
        "output_tokens": int(meta.get("output_tokens", 0) or 0),
        "seconds": round(seconds, 4),
    }


def _describe_validation(error: Exception) -> str:
    if isinstance(error, ValidationError):
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in error.errors()[:15]
        ]
        return "the answer does not match the required JSON schema:\n" + "\n".join(lines)
    text = str(error)
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + " …"


@functools.cache
def json_schema_of(schema: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema, built once per class: pydantic rebuilds it on every call, which
    cost more CPU per document than everything else in the client."""
    return schema.model_json_schema()


class StructuredLLM:
    """Ask a chat model for answers shaped like a pydantic model, over any server."""

    def __init__(self, llm: BaseChatModel, *, method: StructuredMethod = "auto") -> None:
        self.llm = llm
        self.method = method
        self._rung = 0 if method == "auto" else LADDER.index(method)
        self._runnables: dict[tuple[type[BaseModel], str], Any] = {}

    def _runnable(self, schema: type[BaseModel], method: StructuredMethod) -> Any:
        """What to invoke for `schema` with `method`, built once per pair.

        The schema goes in as a dict built once (pydantic would rebuild it per request). For
        OpenAI-compatible clients, json_schema travels as a raw `response_format` in the
        request body and the reply text is parsed here: LangChain's wrapper and the OpenAI
        SDK's request transform of the schema cost a quarter of the client's CPU per document.
        Other models use LangChain's `with_structured_output`.
        """
        key = (schema, method)
        if key in self._runnables:
            return self._runnables[key]
        runnable: Any
        if method == "json_text":
            runnable = self.llm
        elif method == "json_schema" and _speaks_openai(self.llm):
            response_format = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "strict": True,
                    "schema": copy.deepcopy(json_schema_of(schema)),
                },
            }
            extra = dict(getattr(self.llm, "extra_body", None) or {})
            runnable = self.llm.bind(extra_body={**extra, "response_format": response_format})
        else:
            runnable = self.llm.with_structured_output(
                copy.deepcopy(json_schema_of(schema)),
                method=method,
                include_raw=True,
                **({"strict": True} if method == "json_schema" else {}),
            )
        self._runnables[key] = runnable
        return runnable

    @property
    def active_method(self) -> StructuredMethod:
        return LADDER[self._rung]

    async def call(
        self,
        schema: type[T],
        messages: list[dict[str, str]],
        *,
        stage: str,
        config: RunnableConfig | None = None,
    ) -> StructuredResult[T]:
        """Run one attempt. Parse failures come back as `error`; transport errors raise."""
        while True:
            method = self.active_method
            started = time.perf_counter()
            try:
                return await self._call_with(method, schema, messages, stage, config, started)
            except Exception as exc:
                if self.method == "auto" and _is_unsupported(exc) and self._rung < len(LADDER) - 1:
                    self._rung += 1
                    continue
                raise

    async def _call_with(
        self,
        method: StructuredMethod,
        schema: type[T],
        messages: list[dict[str, str]],
        stage: str,
        config: RunnableConfig | None,
        started: float,
    ) -> StructuredResult[T]:
        out: Any = await invoke_model(self._runnable(schema, method), messages, config)
        if isinstance(out, BaseMessage):  # the reply text is the answer
            seconds = time.perf_counter() - started
            reply_text = message_text(out)
            usage = usage_entry(stage, out, seconds)
            try:
                answer = schema.model_validate_json(extract_json_object(reply_text))
            except (ValidationError, ValueError) as exc:
                refusal = out.additional_kwargs.get("refusal")
                why = f"the model refused: {refusal}" if refusal else _describe_validation(exc)
                return StructuredResult(None, why, reply_text, usage, method)
            return StructuredResult(answer, None, reply_text, usage, method)

        seconds = time.perf_counter() - started
        raw = out.get("raw") if isinstance(out, dict) else None
        raw_message = raw if isinstance(raw, AIMessage) else None
        text = message_text(raw_message)
        usage = usage_entry(stage, raw_message, seconds)
        parsed = out.get("parsed") if isinstance(out, dict) else None
        if isinstance(parsed, schema):
            return StructuredResult(parsed, None, text, usage, method)
        if isinstance(parsed, dict):
            try:
                return StructuredResult(schema.model_validate(parsed), None, text, usage, method)
            except ValidationError as exc:
                return StructuredResult(None, _describe_validation(exc), text, usage, method)
        error = out.get("parsing_error") if isinstance(out, dict) else None
        if error is None and text:
            # Function calling answered in prose: try the text before calling it a failure.
            try:
                salvaged = schema.model_validate_json(extract_json_object(text))
                return StructuredResult(salvaged, None, text, usage, method)
            except (ValidationError, ValueError) as exc:
                error = exc
        message = (
            _describe_validation(error)
            if isinstance(error, Exception)
            else "the model answered without the required structured output"
        )
        return StructuredResult(None, message, text, usage, method)


def summarize_usage(entries: list[UsageEntry]) -> Usage:
    """Per-stage totals of calls, tokens and seconds, plus a `total` row."""
    totals: Usage = {}
    for entry in entries:
        for key in (entry["stage"], "total"):
            row = totals.setdefault(
                key, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "seconds": 0.0}
            )
            row["calls"] += entry["calls"]
            row["input_tokens"] += entry["input_tokens"]
            row["output_tokens"] += entry["output_tokens"]
            row["seconds"] = round(row["seconds"] + entry["seconds"], 4)
    return totals
