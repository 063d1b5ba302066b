"""The model side of a run: where it is served, whether it answers, cache and rate limit."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter

from gem_graph.run.cache import SQLiteLLMCache
from gem_graph.run.config import redact_url
from gem_graph.run.options import EndpointUnreachable


def model_endpoint(llm: BaseChatModel) -> str | None:
    """The base URL a chat model talks to, if it has one."""
    for name in ("openai_api_base", "base_url"):
        value = getattr(llm, name, None)
        if isinstance(value, str) and value:
            return value
    return None


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
