"""What a model server can do, learned from a few tiny calls before a run.

Servers differ: some reject `response_format: json_schema` (llama-cpp-python with a 500),
some ignore it silently, some offer only `json_object`, some take `tools` but not a forced
`tool_choice`, and some ignore `max_completion_tokens`. The probe tries each structured
method on a tiny schema — a method works when its reply parses and validates, whatever
the HTTP status — then measures latency and speed and which cap parameter the server
honours. The result (`ModelProfile`) picks the starting rung of every stage's ladder, the
cap's form and a timeout that fits the server.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, get_args

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, computed_field

from gem_graph.llm import (
    LADDER,
    StructuredLLM,
    is_request_rejection,
    is_retryable,
    is_timeout,
    message_text,
    speaks_openai,
)
from gem_graph.run.config import redact_url
from gem_graph.settings import CapParameter, ServerProfile, Settings, StructuredMethod

T = TypeVar("T")
PROBE_MARKER = "gem-graph capability probe"
"""In every probe request's system message, so a log (or a test server) can tell them apart."""
CAP_PROBE_TOKENS = 8
PROBE_TIMEOUT_S = 120.0
"""A probe call that takes longer means the server is not answering."""
TRANSIENT_RETRIES = 2
_PROFILES: dict[tuple[str | None, str], ModelProfile] = {}


class ProbeReply(BaseModel):
    """The tiny schema every method is tried on."""

    model_config = ConfigDict(extra="forbid")
    word: Literal["ready"]
    number: int


class MethodTrial(BaseModel):
    """How one structured method fared."""

    method: StructuredMethod
    works: bool
    """The reply parsed and validated against the tiny schema."""
    accepted: bool
    """The server took the request (no request-shape error), whatever the reply was."""
    detail: str
    seconds: float
    output_tokens: int = 0


class ModelProfile(BaseModel):
    """What the probe found: stored with the run, shown in its summary and by `doctor`."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str | None
    model: str
    server: ServerProfile
    trials: list[MethodTrial] = Field(default_factory=list)
    caps_honoured: bool = True
    """False when neither cap form stopped a long reply: replies may run long."""

    def matches(self, endpoint: str | None, model: str) -> bool:
        """True when this profile was made for `endpoint` and `model`."""
        return self.endpoint == endpoint and self.model == model

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line for run summaries and `doctor` (stored with the profile)."""
        server = self.server
        method = server.method or "none proved itself (starting at json_schema)"
        speed = f", ~{server.tokens_per_s:.0f} tokens/s" if server.tokens_per_s else ""
        cap = server.cap_parameter if self.caps_honoured else "none honoured"
        return f"structured output {method}, token cap via {cap}{speed}"


class ProbeFailed(Exception):
    """The server could not be used at all; one line for the user."""


_MESSAGES = [
    {
        "role": "system",
        "content": f"({PROBE_MARKER}) You answer with one JSON object and nothing else.",
    },
    {
        "role": "user",
        "content": 'Reply with exactly this JSON object: {"word": "ready", "number": 7}\n'
        'It must match this JSON Schema: {"type": "object", "properties": {"word": {"enum": '
        '["ready"]}, "number": {"type": "integer"}}, "required": ["word", "number"], '
        '"additionalProperties": false}',
    },
]
_LONG = [
    {"role": "system", "content": f"({PROBE_MARKER}) You are a counting assistant."},
    {"role": "user", "content": "Count from 1 to 60, separated by spaces."},
]


def needs_probe(llm: BaseChatModel, settings: Settings) -> bool:
    """True when `settings` ask for a probe and `llm` has a server to probe (a scripted
    model has none; an explicit `model.server` or `probe = false` skips it)."""
    model = settings.model
    return model.probe and model.server is None and speaks_openai(llm)


async def probed_settings(llm: BaseChatModel, settings: Settings) -> Settings:
    """`settings` with `model.server` from a probe of `llm`'s server, probed once per
    endpoint and model in this process. Raises `ProbeFailed` when the server is unusable."""
    if not needs_probe(llm, settings):
        return settings
    from gem_graph.run.endpoint import model_endpoint

    endpoint = model_endpoint(llm)
    profile = await profile_for(llm, endpoint=endpoint, model=settings.model.name)
    return settings.updated(model={"server": profile.server.model_dump()})


async def profile_for(llm: BaseChatModel, *, endpoint: str | None, model: str) -> ModelProfile:
    """The profile of `endpoint` and `model`, probed once per process."""
    key = (endpoint, model)
    if key not in _PROFILES:
        _PROFILES[key] = await probe_model(llm, endpoint=endpoint, model=model)
    return _PROFILES[key]


async def probe_model(
    llm: BaseChatModel,
    *,
    endpoint: str | None,
    model: str,
    methods: tuple[StructuredMethod, ...] = LADDER,
) -> ModelProfile:
    """Learn the cap form (and the speed) first, so that no later probe call can run on,
    then try each method in ladder order until one works.

    Raises `ProbeFailed` with one line when the server cannot be reached, refuses the
    credentials, keeps failing, or rejects every request shape.
    """
    where = f"the model server at {redact_url(endpoint)}" if endpoint else "the model server"
    try:
        server, honoured = await _probe_caps(llm)
        trials: list[MethodTrial] = []
        for method in methods:
            trials.append(await _try_method(llm, method, server))
            if trials[-1].works:
                break
    except ProbeFailed as exc:
        raise ProbeFailed(f"{where}: {exc}") from None
    if not any(t.accepted for t in trials):
        last = trials[-1].detail
        raise ProbeFailed(f"{where}: rejected every structured-output method; last: {last}")
    chosen = next((t for t in trials if t.works), None) or next(t for t in trials if t.accepted)
    server = server.model_copy(
        update={"method": chosen.method if chosen.works else None, "latency_s": chosen.seconds}
    )
    return ModelProfile(
        endpoint=endpoint, model=model, server=server, trials=trials, caps_honoured=honoured
    )


async def _probe_caps(llm: BaseChatModel) -> tuple[ServerProfile, bool]:
    """The first cap form that stops a long reply (and tokens per second, measured on the
    way); `(…, False)` when the server obeys neither."""
    rate: float | None = None
    for parameter in get_args(CapParameter):
        server = ServerProfile(cap_parameter=parameter)
        structured = StructuredLLM(llm, method="json_text", server=server, timeout=_deadline)
        runnable = structured.runnable(None, "json_text", CAP_PROBE_TOKENS)
        started = time.perf_counter()
        message = await _ask(
            functools.partial(structured.invoke, runnable, _LONG, None, max_tokens=CAP_PROBE_TOKENS)
        )
        seconds = time.perf_counter() - started
        if isinstance(message, str):  # a request-shape rejection: try the other form
            continue
        meta = getattr(message, "usage_metadata", None) or {}
        tokens = int(meta.get("output_tokens", 0) or 0) or len(message_text(message)) // 4
        if tokens and seconds > 0:
            rate = max(rate or 0.0, tokens / seconds)
        if 0 < tokens <= CAP_PROBE_TOKENS + 4:
            return server.model_copy(update={"tokens_per_s": _rounded(rate)}), True
    return ServerProfile(tokens_per_s=_rounded(rate)), False


async def _try_method(
    llm: BaseChatModel, method: StructuredMethod, server: ServerProfile
) -> MethodTrial:
    """Ask for the tiny schema with `method`; it works when the reply validates."""
    structured = StructuredLLM(llm, method=method, server=server, timeout=_deadline)
    started = time.perf_counter()
    result = await _ask(
        lambda: structured.call(ProbeReply, _MESSAGES, stage="probe", max_tokens=64)
    )
    seconds = round(time.perf_counter() - started, 3)
    if isinstance(result, str):
        return MethodTrial(
            method=method, works=False, accepted=False, detail=result, seconds=seconds
        )
    tokens = int(result.usage.get("output_tokens", 0))
    works = result.parsed is not None
    detail = "ok" if works else f"answered, but not in shape: {_one_line(result.error or '')}"
    return MethodTrial(
        method=method,
        works=works,
        accepted=True,
        detail=detail,
        seconds=seconds,
        output_tokens=tokens,
    )


async def _ask(call: Callable[[], Awaitable[T]]) -> T | str:
    """`call()`'s answer, or why the server rejected its request shape (a string). Raises
    `ProbeFailed` when the server is unusable: unreachable, silent past the probe's
    deadline, refusing the credentials, or failing on retries."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return await call()
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if is_request_rejection(exc):
                return f"rejected the request: {_one_line(exc)}"
            if status in (401, 403):
                unset = "" if os.environ.get("OPENAI_API_KEY") else " (OPENAI_API_KEY is not set)"
                raise ProbeFailed(f"refused the credentials: HTTP {status}{unset}") from None
            if is_timeout(exc):
                raise ProbeFailed(f"did not answer within {PROBE_TIMEOUT_S:g} s") from None
            if is_retryable(exc) and status is None:
                raise ProbeFailed(f"unreachable: {_one_line(exc)}") from None
            if not is_retryable(exc) or attempt == TRANSIENT_RETRIES:
                raise ProbeFailed(f"keeps failing: {_one_line(exc)}") from None
            await asyncio.sleep(2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _deadline(max_tokens: int | None) -> float:
    return PROBE_TIMEOUT_S


def _rounded(rate: float | None) -> float | None:
    return round(rate, 1) if rate else None


def _one_line(value: object) -> str:
    text = str(value).strip().splitlines()
    return (text[0] if text else type(value).__name__)[:300]
