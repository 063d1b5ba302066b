"""One document through the run's graph: building that graph (model with cache and rate
limiter, sandbox, document or synthesizer graph) and turning one document into its outcome.

Every engine uses both: the local engine in the driver, the Ray engine in each actor. The
outcome is plain data, so it can travel from an actor to the driver, which stores it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.contracts import make_reject
from gem_graph.run.cache import SQLiteLLMCache
from gem_graph.run.endpoint import prepare_model
from gem_graph.run.options import FAILED_CODES, RunError, cache_file
from gem_graph.run.session import cache_namespace
from gem_graph.settings import Settings
from gem_graph.usage import summarize_usage


@dataclass
class DocumentOutcome:
    """What the document graph made of one document, as plain JSON-able data: what the store
    keeps for it (`status`: kept, rejected or failed) and the environments to save."""

    status: str
    stage: str
    records: list[dict[str, Any]]
    reject: dict[str, Any] | None
    usage: dict[str, Any]
    environments: list[dict[str, Any]]
    started_at: float
    finished_at: float


async def invoke_graph(graph: Any, document: dict[str, Any]) -> DocumentOutcome:
    """Run one document through `graph` to its outcome. Transport and sandbox failures come
    back from the graph as `failed` (retried by a re-run); a graph that raises is a last
    guard, an `internal_error` reject."""
    started = time.time()
    try:
        out = await graph.ainvoke({"document": document})
    except Exception as exc:  # the graph turns failures into rejects; this is a last guard
        reason = f"the document graph raised {type(exc).__name__}: {exc}"[:2000]
        out = {
            "records": [],
            "rejects": [make_reject(document["id"], "runner", "internal_error", reason)],
            "usage": [],
        }
    finished = time.time()
    records = list(out.get("records") or [])
    rejects = list(out.get("rejects") or [])
    reject = rejects[0] if rejects and not records else None
    if records:
        status, stage = "kept", "emit"
    elif reject is not None and reject.get("code") in FAILED_CODES:
        status, stage = "failed", str(reject.get("stage") or "?")
    else:
        status, stage = "rejected", str((reject or {}).get("stage") or "?")
    return DocumentOutcome(
        status=status,
        stage=stage,
        records=records,
        reject=reject,
        usage=summarize_usage(list(out.get("usage") or [])),
        environments=list(out.get("environments") or []),
        started_at=started,
        finished_at=finished,
    )


@contextlib.asynccontextmanager
async def document_graph(
    llm: BaseChatModel, settings: Settings, run_dir: Path
) -> AsyncIterator[tuple[Any, SQLiteLLMCache | None]]:
    """The run's compiled graph (document or synthesizer) with its LLM cache, rate limiter
    and started sandbox, closed on exit; yields `(graph, cache)`. Every engine builds its
    graphs here, in the driver or in each Ray actor."""
    from gem_graph.graph import build_gem_graph
    from gem_graph.synthesizer import build_synthesizer_graph

    cache: SQLiteLLMCache | None = None
    sandbox: Any = None
    try:
        cache_path = cache_file(settings, run_dir)
        if cache_path is not None:
            cache = SQLiteLLMCache(cache_path, namespace=cache_namespace())
        model = prepare_model(
            llm, cache=cache, requests_per_second=settings.run.requests_per_second
        )
        if settings.pipeline.execute:
            from gem_graph.sandbox import Sandbox, SandboxUnavailable

            sandbox = Sandbox(settings.sandbox)
            try:
                await sandbox.start()
            except SandboxUnavailable as exc:
                raise RunError(f"the sandbox cannot run at the requested tier: {exc}") from None
        factory = (
            build_synthesizer_graph if settings.pipeline.mode == "synthesizer" else build_gem_graph
        )
        yield factory(llm=model, settings=settings, sandbox=sandbox), cache
    finally:
        if sandbox is not None:
            await sandbox.aclose()
        if cache is not None:
            cache.close()
