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
import os
import time
from typing import Any, Literal, get_args

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, computed_field

from gem_graph.llm import LADDER, StructuredLLM, is_request_rejection, is_retryable
from gem_graph.run.config import redact_url
from gem_graph.settings import CapParameter, ServerProfile, StructuredMethod

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
    """Try each method in ladder order until one works, then the cap form and the speed.

    Raises `ProbeFailed` when the server cannot be reached, refuses the credentials, or
    rejects every request shape.
    """
    where = f"the model server at {redact_url(endpoint)}" if endpoint else "the model server"
    trials: list[MethodTrial] = []
    for method in methods:
        try:
            trial = await _try_method(llm, method)
        except ProbeFailed as exc:
            raise ProbeFailed(f"{where}: {exc}") from None
        if trial.detail.startswith(("unreachable", "refused")):
            raise ProbeFailed(f"{where}: {trial.detail}")
        trials.append(trial)
        if trial.works:
            break
    if not any(t.accepted for t in trials):
        last = trials[-1].detail
        raise ProbeFailed(f"{where}: rejected every structured-output method; last: {last}")
    chosen = next((t for t in trials if t.works), None) or next(t for t in trials if t.accepted)
    server = ServerProfile(method=chosen.method, latency_s=round(chosen.seconds, 3))
    server, honoured = await _probe_caps(llm, server)
    return ModelProfile(
        endpoint=endpoint, model=model, server=server, trials=trials, caps_honoured=honoured
    )


async def _try_method(llm: BaseChatModel, method: StructuredMethod) -> MethodTrial:
    structured = StructuredLLM(llm, method=method, timeout=_probe_deadline)
    for attempt in range(TRANSIENT_RETRIES + 1):
        started = time.perf_counter()
        try:
            result = await structured.call(ProbeReply, _MESSAGES, stage="probe", max_tokens=64)
        except Exception as exc:
            seconds = time.perf_counter() - started
            status = getattr(exc, "status_code", None)
            if is_request_rejection(exc):
                return _trial(method, False, f"rejected the request: {_one_line(exc)}", seconds)
            if status in (401, 403):
                unset = "" if os.environ.get("OPENAI_API_KEY") else " (OPENAI_API_KEY is not set)"
                return _trial(method, False, f"refused the credentials: HTTP {status}{unset}", 0)
            if is_retryable(exc) and status is None:
                return _trial(method, False, f"unreachable: {_one_line(exc)}", seconds)
            if is_retryable(exc) and attempt < TRANSIENT_RETRIES:
                await asyncio.sleep(2**attempt)
                continue
            raise ProbeFailed(f"keeps failing: {_one_line(exc)}") from None
        seconds = time.perf_counter() - started
        tokens = int(result.usage.get("output_tokens", 0))
        if result.parsed is not None:
            return _trial(method, True, "ok", seconds, tokens)
        shape = _one_line(result.error or "")
        return _trial(method, False, f"answered, but not in shape: {shape}", seconds, tokens)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def _trial(
    method: StructuredMethod, accepted: bool, detail: str, seconds: float, tokens: int = 0
) -> MethodTrial:
    return MethodTrial(
        method=method,
        works=detail == "ok",
        accepted=accepted or detail == "ok" or detail.startswith("answered"),
        detail=detail,
        seconds=round(seconds, 3),
        output_tokens=tokens,
    )


def _probe_deadline(max_tokens: int | None) -> float:
    return PROBE_TIMEOUT_S


async def _probe_caps(llm: BaseChatModel, server: ServerProfile) -> tuple[ServerProfile, bool]:
    """Find a cap form that stops a long reply; measure tokens per second on the way."""
    rate: float | None = None
    for parameter in get_args(CapParameter):
        tokens, seconds = await _capped_reply(llm, parameter)
        if tokens and seconds > 0:
            rate = max(rate or 0.0, tokens / seconds)
        if 0 < tokens <= CAP_PROBE_TOKENS + 4:
            speed = round(rate, 1) if rate else None
            return server.model_copy(
                update={"cap_parameter": parameter, "tokens_per_s": speed}
            ), True
    return server.model_copy(update={"tokens_per_s": round(rate, 1) if rate else None}), False


async def _capped_reply(llm: BaseChatModel, parameter: CapParameter) -> tuple[int, float]:
    """Output tokens and seconds of a long reply asked to stop at `CAP_PROBE_TOKENS`."""
    structured = StructuredLLM(
        llm,
        method="json_text",
        server=ServerProfile(cap_parameter=parameter),
        timeout=_probe_deadline,
    )
    runnable = structured.runnable(None, "json_text", CAP_PROBE_TOKENS)
    started = time.perf_counter()
    try:
        message: Any = await structured.invoke(runnable, _LONG, None, max_tokens=CAP_PROBE_TOKENS)
    except Exception:
        return 0, 0.0
    seconds = time.perf_counter() - started
    meta = getattr(message, "usage_metadata", None) or {}
    tokens = int(meta.get("output_tokens", 0) or 0)
    if not tokens:
        tokens = max(1, len(str(getattr(message, "content", ""))) // 4)
    return tokens, seconds


def _one_line(value: object) -> str:
    text = str(value).strip().splitlines()
    return (text[0] if text else type(value).__name__)[:300]
