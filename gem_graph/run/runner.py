"""Corpus runs: stream documents through the document graph into a run store.

`run_corpus` keeps at most `concurrency` documents in flight (a worker pool fed from a small
queue, never one giant batch), writes each document's outcome to the run store in one
transaction as soon as it is done, and skips documents an earlier run already finished,
so a killed run resumes where it stopped. Long documents are split into segments first.

Failure handling:
- bad input entries become rejects at stage `input` and the run goes on;
- transient model errors are retried by the graph's retry policy (the only retry layer);
- a document whose model calls still failed is stored as `failed` (not finished: a re-run
  retries it); after `failure_threshold` consecutive failed documents the run stops
  scheduling and reports one line: "cannot reach the model server at …: <error>".
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.contracts import make_reject
from gem_graph.records import text_sha256
from gem_graph.run.config import redact_url
from gem_graph.run.corpus import BadInput, CorpusItem, segment_document
from gem_graph.run.document import DocumentOutcome, document_graph, invoke_graph
from gem_graph.run.endpoint import model_endpoint, preflight, resolve_server
from gem_graph.run.engine import Engine, ModelFactory, engine_of
from gem_graph.run.environments import isolation_label, save_environments
from gem_graph.run.options import (
    SANDBOX_FAILURE,
    EndpointUnreachable,
    RunError,
    RunOptions,
    RunSummary,
    SettingsMismatch,
    segment_size,
    shard_of,
)
from gem_graph.run.report import ProgressDisplay, RunCounters
from gem_graph.run.session import check_settings, close_session, run_summary
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings

__all__ = [  # the public face of a run, wherever each name lives
    "EndpointUnreachable",
    "RunError",
    "RunOptions",
    "RunSummary",
    "SettingsMismatch",
    "run_corpus",
]


class _Runner:
    """One session of a corpus run: producer, worker pool, store writes, counters."""

    def __init__(
        self,
        *,
        graph: Any,
        store: RunStore,
        settings: Settings,
        options: RunOptions,
        settings_fingerprint: str,
        endpoint: str | None,
        counters: RunCounters | None = None,
        invoke: Callable[[dict[str, Any]], Awaitable[DocumentOutcome]] | None = None,
    ) -> None:
        self.graph = graph
        self.invoke = invoke or functools.partial(invoke_graph, graph)
        """Runs one document to its outcome: here, or on another process (the Ray engine)."""
        self.store = store
        self.settings = settings
        self.options = options
        self.fingerprint = settings_fingerprint
        self.endpoint = endpoint
        self.segment_chars = segment_size(settings)
        self.max_chars = self.segment_chars * settings.run.max_segments
        self.counters = counters if counters is not None else RunCounters(total=options.total)
        self.finished = store.finished_ids()
        self.seen: set[str] = set()
        self.consecutive_failures = 0
        self.last_failure = ""
        self.stopped_reason: str | None = None

    # ---- producer ---------------------------------------------------------------------------

    async def produce(self, items: Iterable[CorpusItem], queue: asyncio.Queue[Any]) -> None:
        taken = 0
        for item in items:
            if self.stopped_reason is not None:
                break
            if self.settings.run.limit is not None and taken >= self.settings.run.limit:
                break
            taken += 1
            shard = self.options.shard
            if shard is not None and shard_of(taken - 1, shard[1]) != shard[0]:
                continue
            if isinstance(item, BadInput):
                self._bad_input(item)
                continue
            if len(item["text"]) > self.max_chars:
                reason = (
                    f"the text has {len(item['text']):,} characters, over the run's limit of "
                    f"{self.max_chars:,} ({self.settings.run.max_segments} segments of "
                    f"{self.segment_chars:,}); split the document before the run"
                )
                self._bad_input(BadInput(str(item["id"]), reason, meta=item.get("meta") or {}))
                continue
            segments = segment_document(item, self.segment_chars)
            weight = 1.0 / len(segments)
            for segment in segments:
                segment_id = str(segment["id"])
                if segment_id in self.seen:
                    self._bad_input(
                        BadInput(f"{segment_id} (duplicate)", f"duplicate id {segment_id!r}"),
                        weight=weight,
                    )
                    continue
                self.seen.add(segment_id)
                if segment_id in self.finished:
                    self.counters.skipped += 1
                    self.counters.done += weight
                    continue
                await queue.put((segment, weight))
            await asyncio.sleep(0)

    def _bad_input(self, bad: BadInput, *, weight: float = 1.0) -> None:
        self.counters.done += weight
        if bad.id in self.finished:
            self.counters.skipped += 1
            return
        now = time.time()
        reject = make_reject(bad.id, "input", bad.code, bad.reason, where="input")
        self.store.save_document(
            {"id": bad.id, "text": "", "meta": bad.meta},
            status="rejected",
            stage="input",
            records=[],
            reject=reject,
            usage={},
            started_at=now,
            finished_at=now,
            settings_fingerprint=self.fingerprint,
        )
        self.finished.add(bad.id)
        self.counters.processed += 1
        self.counters.rejected["input"] += 1

    # ---- workers ----------------------------------------------------------------------------

    async def work(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            job = await queue.get()
            try:
                if job is None:
                    return
                if self.stopped_reason is None:
                    await self.process(*job)
            finally:
                queue.task_done()

    async def process(self, document: dict[str, Any], weight: float) -> None:
        self.save(document, await self.invoke(document), weight)

    def save(self, document: dict[str, Any], outcome: DocumentOutcome, weight: float) -> None:
        """Write one document's outcome to the store (one transaction) and count it."""
        records, reject, usage = outcome.records, outcome.reject, outcome.usage
        saved = save_environments(self.store, self.options.run_dir, outcome.environments)
        self.store.save_document(
            {**document, "text_sha256": text_sha256(document["text"])},
            status=outcome.status,
            stage=outcome.stage,
            records=records,
            reject=reject,
            usage=usage,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            settings_fingerprint=self.fingerprint,
            environments=saved,
            isolation=isolation_label(records),
        )
        self._count(outcome.status, outcome.stage, records, usage, weight, reject)

    def _count(
        self,
        status: str,
        stage: str,
        records: list[dict[str, Any]],
        usage: Mapping[str, Mapping[str, Any]],
        weight: float,
        reject: Mapping[str, Any] | None,
    ) -> None:
        counters = self.counters
        counters.processed += 1
        counters.done += weight
        total = usage.get("total") or {}
        counters.input_tokens += int(total.get("input_tokens", 0))
        counters.output_tokens += int(total.get("output_tokens", 0))
        if status == "failed":
            counters.failed += 1
            self.consecutive_failures += 1
            self.last_failure = str((reject or {}).get("reason") or "")
            if self.consecutive_failures >= self.settings.run.failure_threshold:
                self._stop()
            return
        self.consecutive_failures = 0
        if status == "kept":
            counters.kept += 1
            counters.records += len(records)
        else:
            counters.rejected[stage] += 1

    def _stop(self) -> None:
        if self.stopped_reason is not None:
            return
        detail = self.last_failure.splitlines()[0] if self.last_failure else "no answer"
        if detail.startswith(SANDBOX_FAILURE):
            self.stopped_reason = f"the sandbox keeps failing: {detail}"[:500]
            return
        where = redact_url(self.endpoint) or "the configured endpoint"
        detail = re.sub(r"^model call failed \([^)]*\): ", "", detail)
        self.stopped_reason = f"cannot reach the model server at {where}: {detail}"[:500]

    # ---- session ----------------------------------------------------------------------------

    async def run(self, items: Iterable[CorpusItem]) -> None:
        workers_n = self.settings.run.concurrency
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=workers_n)
        workers = [asyncio.create_task(self.work(queue)) for _ in range(workers_n)]
        try:
            await self.produce(items, queue)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()


@dataclass
class ShardOutcome:
    """How `run_shard` ended: why it stopped early (None: it did not) and cache hits."""

    stopped_reason: str | None
    cache_hits: int = 0


async def run_shard(
    items: Iterable[CorpusItem],
    *,
    llm: BaseChatModel,
    settings: Settings,
    options: RunOptions,
    store: RunStore,
    settings_fingerprint: str,
    endpoint: str | None,
    counters: RunCounters,
) -> ShardOutcome:
    """Run `items` (only those of `options.shard`, if set) into a store that is already
    prepared: settings checked and a session started. Updates `counters` as documents end.

    This is the local engine's part of `run_corpus`; `ray_engine.run_shard_on_ray` is the
    Ray engine's.
    """
    async with document_graph(llm, settings, options.run_dir) as (graph, cache):
        runner = _Runner(
            graph=graph,
            store=store,
            settings=settings,
            options=options,
            settings_fingerprint=settings_fingerprint,
            endpoint=endpoint,
            counters=counters,
        )
        with ProgressDisplay(counters, enabled=options.progress):
            await runner.run(items)
        return ShardOutcome(runner.stopped_reason, cache.hits if cache is not None else 0)


async def run_corpus(
    items: Iterable[CorpusItem],
    *,
    llm: BaseChatModel,
    settings: Settings,
    options: RunOptions,
    engine: Engine | None = None,
    model_factory: ModelFactory | None = None,
) -> RunSummary:
    """Run every item through the document graph (or, in synthesizer mode, the synthesizer
    graph) into the store in `options.run_dir`.

    Works with any `BaseChatModel` (ChatOpenAI, the scripted model, …). Raises
    `SettingsMismatch` when the folder was made with other output settings,
    `EndpointUnreachable` when the preflight cannot connect, and `RunError` for bad options;
    document-level problems never raise.

    `engine` (default `settings.run.engine`, or `ray` when `settings.run.workers > 1`):
    `local` runs the graph in this process; `ray` runs it in Ray actors (see
    `gem_graph.run.ray_engine`), each building its model with `model_factory(settings)`
    (a picklable function; default `make_chat_model(settings.model)`), while this process
    reads the corpus and writes the store. Both give the same results.
    """
    engine = engine or engine_of(settings)
    segment_size(settings)
    endpoint = options.endpoint or model_endpoint(llm)
    if options.preflight and endpoint:
        preflight(endpoint)
    store = RunStore(options.run_dir, create=True)
    counters = RunCounters(total=options.total, prior_seconds_per_doc=store.seconds_per_document())
    session = 0
    started = time.monotonic()
    stopped: str | None = "interrupted"
    outcome = ShardOutcome(stopped_reason=stopped)
    try:
        current, _ = check_settings(store, settings, options)
        settings = await resolve_server(llm, settings, store, endpoint)
        session = store.start_session(current)
        shard = run_shard
        if engine == "ray":
            from gem_graph.run.ray_engine import run_shard_on_ray

            shard = functools.partial(run_shard_on_ray, model_factory=model_factory)
        outcome = await shard(
            items,
            llm=llm,
            settings=settings,
            options=options,
            store=store,
            settings_fingerprint=current,
            endpoint=endpoint,
            counters=counters,
        )
        stopped = outcome.stopped_reason
    finally:
        summary = close_session(store, session, counters, stopped)
    return run_summary(
        options,
        counters,
        started=started,
        stopped_reason=stopped,
        summary=summary,
        cache_hits=outcome.cache_hits,
    )
