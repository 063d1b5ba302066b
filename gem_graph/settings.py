"""One settings object: every model option, attempt cap, sandbox limit and run option.

`Settings` is a pydantic-settings object. Constructed in code, its values come from the
arguments, then `GEM_*` environment variables (`GEM_SANDBOX__TIER=strict`; `GEM_MODEL=m` is
short for `GEM_MODEL__NAME=m`), then the defaults below. The command line adds its flags
and a TOML file under them (`gem_graph.run.config.load_settings`, which also says where
each value came from). Every flag and default is derived from these fields.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

StructuredMethod = Literal["auto", "json_schema", "json_object", "function_calling", "json_text"]
CapParameter = Literal["max_completion_tokens", "max_tokens"]
SandboxTier = Literal["strict", "standard", "none"]
HttpClient = Literal["httpx", "aiohttp"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


MIN_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 1800.0
DEFAULT_TIMEOUT_S = 120.0


class ServerProfile(_Strict):
    """What a capability probe learned about the model server (`gem_graph.probe`): runs
    set it, and stages use it to shape their requests."""

    method: StructuredMethod | None = None
    """The rung the `auto` ladder starts on; None: no rung proved itself, start at the top."""
    cap_parameter: CapParameter = "max_completion_tokens"
    """How the server is told a reply's token cap: OpenAI's `max_completion_tokens`, or the
    older `max_tokens` (llama-cpp-python ignores the former)."""
    latency_s: float | None = None
    """Seconds for a tiny structured reply."""
    tokens_per_s: float | None = None
    """Measured output speed."""

    def timeout_for(self, max_tokens: int) -> float:
        """A request timeout that lets a reply of `max_tokens` finish on this server."""
        if not self.tokens_per_s:
            return DEFAULT_TIMEOUT_S
        needed = 2 * (self.latency_s or 0.0) + 1.5 * max_tokens / self.tokens_per_s + 5
        return round(min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, needed)), 1)


class ModelSettings(_Strict):
    """How to reach the chat model. The API key is never stored here: it comes from the env."""

    name: str = "gpt-4o-mini"
    """Model name."""
    base_url: str | None = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL"))
    """Server URL; the default is the OpenAI SDK's own OPENAI_BASE_URL."""
    temperature: float = 0.7
    """Sampling temperature."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Cap on the tokens of one model reply, for every stage; unset: each stage's own cap
    (1k for the filter up to 16k for the synthesizer)."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Seconds per model request; unset: fitted to the server's measured speed and the
    stage's cap (60-1800 s), or 120 s when the server was not probed."""
    structured_method: StructuredMethod = "auto"
    """How replies are made to follow the stage's output schema; `auto` starts where the
    probe found a method that works and steps down when the server rejects one."""
    probe: bool = True
    """Before a run, learn with a few tiny calls which structured method and token-cap form
    the server honours, and how fast it is."""
    server: ServerProfile | None = None
    """What the probe learned (runs fill it in; set it to skip the probe)."""
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

    def request_timeout(self, max_tokens: int | None = None) -> float:
        """Seconds one request may take: `timeout_s` when set, else fitted to the server."""
        if self.timeout_s is not None:
            return self.timeout_s
        if self.server is not None and max_tokens is not None:
            return self.server.timeout_for(max_tokens)
        return DEFAULT_TIMEOUT_S


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
    """Sandbox isolation tier."""
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
    """`pipeline`: the multi-stage GEM graph; `synthesizer`: one model call writes tools,
    environment and dialogue (the paper's Trajectory Synthesizer); the same checks and
    sandbox verification follow."""
    refine: bool = True
    """Run the refine stage."""
    judge: bool = True
    """Run the LLM judge."""
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


class RunSettings(_Strict):
    """How a corpus run is carried out: its input, pace and resilience."""

    engine: Literal["local", "ray"] = "local"
    """Where documents are processed: `local`, in this process; `ray`, in Ray actors on a
    cluster or a local Ray (extra `[ray]`). This process reads the input and writes the run
    folder either way."""
    ray_address: str | None = None
    """With `engine="ray"`: the cluster to join (`auto`, `host:6379`, `ray://host:10001`);
    unset starts a local Ray for the run."""
    concurrency: int = Field(default=8, ge=1)
    """Documents in flight."""
    workers: int = Field(default=1, ge=1)
    """Above 1: Ray actors (one CPU each) sharing the run's concurrency, on a local Ray
    unless `ray_address` is set (implies `engine="ray"`). 1: with `engine="ray"`, one actor
    per CPU of the cluster."""
    limit: int | None = Field(default=None, ge=0)
    """Process at most this many input documents (counted before splitting)."""
    requests_per_second: float | None = Field(default=None, gt=0)
    """Model requests per second across the run."""
    segment_chars: int | None = Field(default=None, ge=200)
    """Split longer documents at paragraphs into segments of this size; unset means
    min(8000, pipeline.max_text_chars)."""
    max_segments: int = Field(default=25, ge=1)
    """A document needing more segments than this is rejected as too long."""
    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive documents failing on the model transport before the run stops."""
    cache: bool | Path = True
    """LLM response cache: true keeps RUN_DIR/llm_cache.sqlite, false none, or a path."""
    text_field: str = "text"
    """JSONL/Parquet field holding a document's text."""
    id_field: str = "id"
    """JSONL/Parquet field holding a document's id."""


SECTIONS = ("model", "attempts", "sandbox", "pipeline", "run")


class _GemEnvironment(EnvSettingsSource):
    """`GEM_*` variables, with `GEM_MODEL=name` as the long-standing short form of
    `GEM_MODEL__NAME` (the `model` section would otherwise try to read it as JSON)."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        if field_name == "model" and isinstance(value, str) and not value.lstrip().startswith("{"):
            return {"name": value}
        return super().decode_complex_value(field_name, field, value)


class Settings(BaseSettings):
    """Everything a run can be configured with. Immutable; derive variants with `model_copy`.

    `Settings(...)` reads `GEM_*` environment variables under its arguments;
    `Settings.model_validate(data)` reads nothing but `data`.
    """

    model_config = SettingsConfigDict(
        env_prefix="GEM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    attempts: AttemptSettings = Field(default_factory=AttemptSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    run: RunSettings = Field(default_factory=RunSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments over `GEM_*` variables; no `.env` or secrets files."""
        return (init_settings, _GemEnvironment(settings_cls))

    def updated(self, **sections: dict[str, Any]) -> Settings:
        """A validated copy with some fields replaced, by section:
        `settings.updated(run={"concurrency": 4}, sandbox={"tier": "strict"})`."""
        data = self.model_dump()
        for name, values in sections.items():
            if name not in SECTIONS:
                raise ValueError(f"unknown settings section {name!r}; expected {SECTIONS}")
            data[name] = {**data[name], **values}
        return type(self)(**data)


def environment_values() -> dict[str, Any]:
    """What the `GEM_*` environment variables set, shaped like `Settings` (not validated)."""
    return dict(_GemEnvironment(Settings)())
