"""The model side of a run: where it is served, whether it answers, cache and rate limit."""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter

from gem_graph.run.cache import SQLiteLLMCache
from gem_graph.run.config import redact_url
from gem_graph.run.options import EndpointUnreachable
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings


def model_endpoint(llm: BaseChatModel) -> str | None:
    """The base URL a chat model talks to, if it has one."""
    for name in ("openai_api_base", "base_url"):
        value = getattr(llm, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def missing_key_hint(base_url: str | None) -> str | None:
    """Why a run on OpenAI's own API cannot start (no `OPENAI_API_KEY`), else None.

    Local servers take any key, so only the default URL and api.openai.com need one.
    """
    if os.environ.get("OPENAI_API_KEY"):
        return None
    host = urlsplit(base_url).hostname if base_url else "api.openai.com"
    if host != "api.openai.com":
        return None
    return (
        "OPENAI_API_KEY is not set, and the model server is OpenAI's API; export the key, "
        "or point --base-url (or OPENAI_BASE_URL) at your own server"
    )


def preflight(base_url: str, *, timeout_s: float = 5.0) -> None:
    """Open (and close) a TCP connection to the server; raises `EndpointUnreachable`."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise EndpointUnreachable(f"invalid model server URL {redact_url(base_url)!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise EndpointUnreachable(
            f"cannot reach the model server at {redact_url(base_url)}: {reason}"
        ) from None


def prepare_model(
    llm: BaseChatModel,
    *,
    cache: SQLiteLLMCache | None,
    requests_per_second: float | None,
) -> BaseChatModel:
    """A copy of `llm` with the response cache and the rate limiter set.

    The limiter applies after the cache lookup, so cache hits are never throttled.
    """
    update: dict[str, Any] = {}
    if cache is not None:
        update["cache"] = cache
    if requests_per_second:
        update["rate_limiter"] = InMemoryRateLimiter(
            requests_per_second=requests_per_second,
            check_every_n_seconds=min(0.05, 0.5 / requests_per_second),
            max_bucket_size=max(1.0, requests_per_second),
        )
    return llm.model_copy(update=update) if update else llm


PROFILE_META = "model_profile"  # also read by `RunStore.summary`
"""The run store's meta key holding the probe's `ModelProfile`."""


async def resolve_server(
    llm: BaseChatModel, settings: Settings, store: RunStore, endpoint: str | None
) -> Settings:
    """`settings` with `model.server` filled in from a capability probe of the server.

    The profile is stored with the run and reused when the run resumes against the same
    endpoint and model. Only OpenAI-compatible clients are probed (a scripted model has no
    server); `model.probe = false` or an explicit `model.server` skips it. Raises
    `EndpointUnreachable` with one line when the probe finds the server unusable.
    """
    from gem_graph.probe import ModelProfile, ProbeFailed, needs_probe, profile_for

    model = settings.model
    if not needs_probe(llm, settings):
        return settings
    stored = store.get_meta(PROFILE_META)
    profile = ModelProfile.model_validate(stored) if isinstance(stored, dict) else None
    if profile is None or not profile.matches(endpoint, model.name):
        try:
            profile = await profile_for(llm, endpoint=endpoint, model=model.name)
        except ProbeFailed as exc:
            raise EndpointUnreachable(str(exc)) from None
        store.set_meta({PROFILE_META: profile.model_dump(mode="json")})
    return settings.updated(model={"server": profile.server.model_dump()})
