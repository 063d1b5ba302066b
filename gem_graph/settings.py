"""One settings object: every model option, attempt cap and sandbox limit, by name."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

StructuredMethod = Literal["auto", "json_schema", "function_calling", "json_text"]
SandboxTier = Literal["strict", "standard", "none"]
HttpClient = Literal["httpx", "aiohttp"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Strict):
    """How to reach the chat model. The API key is never stored here: it comes from the env."""

    name: str = Field(default_factory=lambda: os.environ.get("GEM_MODEL", "gpt-4o-mini"))
    base_url: str | None = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL"))
    temperature: float = 0.7
    max_tokens: int | None = None
    timeout_s: float = 120.0
    structured_method: StructuredMethod = "auto"
    http_client: HttpClient = "httpx"
    """The OpenAI SDK's HTTP transport. `aiohttp` (extra `[aiohttp]`) costs ~2 ms less CPU
    per request, which counts when one process keeps dozens of fast calls in flight; its
    connections belong to the event loop that first uses them, so use the model in one loop
    and close it with `gem_graph.llm.aclose_chat_model` (the CLI runner does both)."""
    max_transport_retries: int = Field(default=5, ge=0)
    """Retries of retryable transport errors (429, 5xx, timeouts); they never count as attempts."""
    retry_initial_s: float = Field(default=1.0, ge=0)
    """First back-off interval; it doubles per retry, with jitter, up to `retry_max_s`."""
    retry_max_s: float = Field(default=60.0, ge=0)


class AttemptSettings(_Strict):
    """Validator-loop caps per stage: drafts allowed before the document is rejected."""

    filter: int = Field(default=2, ge=1)
    extract: int = Field(default=3, ge=1)
    implement: int = Field(default=3, ge=1)
    ground: int = Field(default=3, ge=1)
    refine: int = Field(default=2, ge=1)
    judge: int = Field(default=2, ge=1)
    synthesizer: int = Field(default=3, ge=1)
    """Drafts of the one-call Trajectory Synthesizer (tools, environment and dialogue)."""


class SandboxSettings(_Strict):
    """Limits of the sandbox that executes synthesized tool code."""

    tier: SandboxTier = "standard"
    allow_unsafe_none: bool = False
    """`tier="none"` runs untrusted code with rlimits only; it must be opted into explicitly."""
    call_timeout_s: float = Field(default=5.0, gt=0)
    episode_timeout_s: float = Field(default=30.0, gt=0)
    """Wall-clock budget of one whole episode: every call, and the time between them."""
    build_timeout_s: float = Field(default=10.0, gt=0)
    """Budget for building an episode's database from `schema.sql`, seed and scenario rows."""
    cpu_seconds: int = Field(default=10, ge=1)
    memory_mb: int = Field(default=512, ge=64)
    max_open_files: int = Field(default=64, ge=16)
    max_reply_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_db_bytes: int = Field(default=32 * 1024 * 1024, ge=4096)
    max_stdout_bytes: int = Field(default=64 * 1024, ge=0)
    prestart: int = Field(default=2, ge=0)
    """Workers started ahead of demand so start-up stays off the critical path."""
    fork_server: bool = True
    """Fork episode workers from a locked-down zygote (fast); False starts a fresh `python -I -S`
    per episode (slower, no shared parent between episodes)."""
    templates: int = Field(default=32, ge=0)
    """Built databases kept as fork-server templates (with `fork_server`): episodes on the
    same schema and seed fork from one instead of building their own. 0 turns them off."""


class PipelineSettings(_Strict):
    """What the document graph does beyond the fixed stages."""

    mode: Literal["pipeline", "synthesizer"] = "pipeline"
    """`synthesizer`: one model call writes tools, environment and dialogue (the paper's
    Trajectory Synthesizer); the same checks and sandbox verification follow."""
    refine: bool = True
    judge: bool = True
    execute: bool = True
    """Implement tools as code and replay every call in the sandbox."""
    keep_unrefined: bool = True
    """When refinement runs out of attempts, keep the verified grounded trajectory (marked
    `stats.refined = false`) instead of rejecting the document."""
    min_patterns: int = Field(default=3, ge=0, le=5)
    max_text_chars: int = Field(default=20_000, ge=100)
    max_messages: int = Field(default=200, ge=4)
    """A trajectory longer than this is `too_long`."""
    max_identical_calls: int = Field(default=3, ge=1)
    """More identical calls (same tool, same arguments) in a row than this is `repetition`."""


class Settings(_Strict):
    """Everything a run can be configured with. Immutable; derive variants with `model_copy`."""

    model: ModelSettings = Field(default_factory=ModelSettings)
    attempts: AttemptSettings = Field(default_factory=AttemptSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
