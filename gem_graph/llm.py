"""Model construction, the structured-call helper and per-stage usage accounting.

`StructuredLLM` asks any `BaseChatModel` for an answer matching a pydantic model. It walks
a ladder of methods (json_schema → json_object → function_calling → JSON in text) only when
a server rejects a method's request shape (400/404/422, or a 500 whose body is a request
validation error); `gem_graph.probe` learns the right rung up front. A bad answer is never
retried here: it comes back as an `error` that the stage turns into feedback for its next
attempt. Transport errors propagate so the graph's retry policy can retry the retryable
ones.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, SecretStr, ValidationError

from gem_graph.settings import (
    MAX_TIMEOUT_S,
    ModelSettings,
    ServerProfile,
    Settings,
    StructuredMethod,
)
from gem_graph.usage import UsageEntry, usage_entry

T = TypeVar("T", bound=BaseModel)

LADDER: tuple[StructuredMethod, ...] = (
    "json_schema",
    "json_object",
    "function_calling",
    "json_text",
)
_REQUEST_SHAPE = re.compile(
    r"validation|input should be|not supported|unsupported|unrecognized|not permitted|"
    r"extra (inputs|fields)|unknown (field|parameter|argument)|invalid (value|type|parameter)|"
    r"response_format|tool_choice|json_schema",
    re.IGNORECASE,
)
_MAX_ERROR_CHARS = 1500
_TIMEOUTS_BEFORE_NOTICE = 3
_LOG = logging.getLogger("gem_graph.model")


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
        timeout=settings.timeout_s or MAX_TIMEOUT_S,
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

    return DefaultAioHttpClient(timeout=settings.timeout_s or MAX_TIMEOUT_S)


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


class ModelTimeout(Exception):
    """A request outlived the timeout fitted to the server; retryable like any timeout."""

    is_retryable = True


def is_timeout(error: BaseException) -> bool:
    """True for a request that ran out of time, on our clock or the HTTP client's."""
    return isinstance(error, ModelTimeout | TimeoutError) or type(error).__name__ in {
        "APITimeoutError",
        "ReadTimeout",
        "TimeoutException",
        "ConnectTimeout",
    }


class MalformedResponseError(Exception):
    """The server's reply could not be read as a chat completion (truncated, not JSON, …).

    Treated as a transient transport failure: proxies and overloaded servers produce these.
    """

    is_retryable = True


async def invoke_model(
    runnable: Any,
    messages: list[dict[str, str]],
    config: RunnableConfig | None,
    *,
    timeout_s: float | None = None,
) -> Any:
    """Call a model; an unreadable server reply becomes a retryable `MalformedResponseError`,
    and a call that outlives `timeout_s` a retryable `ModelTimeout`."""
    try:
        if timeout_s is None:
            return await runnable.ainvoke(messages, config=config)
        return await asyncio.wait_for(runnable.ainvoke(messages, config=config), timeout_s)
    except TimeoutError:
        raise ModelTimeout(f"the model did not answer within {timeout_s:g} s") from None
    except Exception as exc:
        if hasattr(exc, "is_retryable") or isinstance(getattr(exc, "status_code", None), int):
            raise
        if isinstance(exc, NotImplementedError):
            raise
        raise MalformedResponseError(
            f"the model server sent an unreadable response ({type(exc).__name__}: {exc})"
        ) from exc


def speaks_openai(llm: BaseChatModel) -> bool:
    """True for langchain-openai clients (ChatOpenAI and subclasses), which take `extra_body`."""
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return False
    return isinstance(llm, BaseChatOpenAI)


def is_request_rejection(error: BaseException) -> bool:
    """True when the server refused the request's shape (a method it cannot do), whatever
    the status: llama-cpp-python answers an unknown `response_format` with a 500 whose body
    is a request validation error. Such a server is not down; the ladder steps down."""
    if isinstance(error, NotImplementedError):
        return True
    status = getattr(error, "status_code", None)
    if status in {400, 404, 405, 415, 422}:
        return True
    if isinstance(status, int) and status >= 500:
        body = getattr(error, "body", None)
        text = json.dumps(body) if body is not None else str(error)
        return bool(_REQUEST_SHAPE.search(text[:4000]))
    return False


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
    """Ask a chat model for answers shaped like a pydantic model, over any server.

    `server` is what a probe learned: the rung `auto` begins on and how this server is told
    a reply's token cap (llama-cpp-python ignores `max_completion_tokens`). `timeout` gives
    the seconds a request with a given cap may take (None: the HTTP client's own timeout).
    """

    def __init__(
        self,
        llm: BaseChatModel,
        *,
        method: StructuredMethod = "auto",
        server: ServerProfile | None = None,
        timeout: Callable[[int | None], float] | None = None,
    ) -> None:
        self.llm = llm
        self.method = method
        start = server.method if server is not None else None
        first = method if method != "auto" else (start if start in LADDER else LADDER[0])
        self._rung = LADDER.index(first)
        self.cap_parameter = server.cap_parameter if server else "max_completion_tokens"
        self.timeout = timeout
        self.timeouts = 0
        self._runnables: dict[tuple[type[BaseModel] | None, str, int | None], Any] = {}

    def runnable(
        self, schema: type[BaseModel] | None, method: StructuredMethod, max_tokens: int | None
    ) -> Any:
        """What to invoke for `schema` with `method` and this cap, built once per triple
        (`schema=None`: plain text replies, for answers that are not JSON).

        The schema goes in as a dict built once (pydantic would rebuild it per request). For
        OpenAI-compatible clients, json_schema and json_object travel as a raw
        `response_format` in the request body and the reply text is parsed here: LangChain's
        wrapper and the OpenAI SDK's request transform of the schema cost a quarter of the
        client's CPU per document. Other models use LangChain's `with_structured_output`.
        """
        key = (schema, method, max_tokens)
        if key in self._runnables:
            return self._runnables[key]
        openai = speaks_openai(self.llm)
        runnable: Any = self.llm
        if openai:
            extra = dict(getattr(self.llm, "extra_body", None) or {})
            update: dict[str, Any] = {}
            if max_tokens is not None and self.cap_parameter == "max_tokens":
                extra["max_tokens"] = max_tokens
            elif max_tokens is not None:
                update["max_tokens"] = max_tokens  # sent as max_completion_tokens
            if method == "json_object":
                extra["response_format"] = {"type": "json_object"}
            elif method == "json_schema" and schema is not None:
                extra["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema.__name__,
                        "strict": True,
                        "schema": copy.deepcopy(json_schema_of(schema)),
                    },
                }
            if extra:
                update["extra_body"] = extra
            runnable = self.llm.model_copy(update=update) if update else self.llm
        text_reply = method in ("json_text", "json_object") or (method == "json_schema" and openai)
        if not text_reply and schema is not None:
            runnable = runnable.with_structured_output(
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

    def deadline(self, max_tokens: int | None) -> float | None:
        """Seconds a request with this cap may take (None: the HTTP client decides)."""
        return self.timeout(max_tokens) if self.timeout is not None else None

    async def invoke(
        self,
        runnable: Any,
        messages: list[dict[str, str]],
        config: RunnableConfig | None,
        *,
        max_tokens: int | None,
    ) -> Any:
        """`invoke_model` with this server's deadline; a timeout that keeps firing is said
        once, with the setting that changes it."""
        deadline = self.deadline(max_tokens)
        try:
            return await invoke_model(runnable, messages, config, timeout_s=deadline)
        except Exception as exc:
            if is_timeout(exc):
                self.timeouts += 1
                if self.timeouts == _TIMEOUTS_BEFORE_NOTICE:
                    limit = f"{deadline:g} s" if deadline else "the client's timeout"
                    _LOG.warning(
                        "model requests keep timing out (%d so far, after %s each); a slow "
                        "server needs a longer one: --timeout SECONDS (model.timeout_s)",
                        self.timeouts,
                        limit,
                    )
            raise

    async def call(
        self,
        schema: type[T],
        messages: list[dict[str, str]],
        *,
        stage: str,
        config: RunnableConfig | None = None,
        max_tokens: int | None = None,
    ) -> StructuredResult[T]:
        """Run one attempt. Parse failures come back as `error`; transport errors raise."""
        while True:
            method = self.active_method
            started = time.perf_counter()
            try:
                return await self._call_with(
                    method, schema, messages, stage, config, started, max_tokens
                )
            except Exception as exc:
                last = self._rung >= len(LADDER) - 1
                if self.method == "auto" and is_request_rejection(exc) and not last:
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
        max_tokens: int | None = None,
    ) -> StructuredResult[T]:
        runnable = self.runnable(schema, method, max_tokens)
        out: Any = await self.invoke(runnable, messages, config, max_tokens=max_tokens)
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
