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
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter

from gem_graph.contracts import make_reject
from gem_graph.llm import summarize_usage
from gem_graph.records import text_sha256
from gem_graph.run.cache import SQLiteLLMCache
from gem_graph.run.config import (
    differences,
    fingerprint,
    output_settings,
    prompt_versions,
    redact_url,
    settings_snapshot,
    versions,
)
from gem_graph.run.corpus import BadInput, CorpusItem, segment_document
from gem_graph.run.report import ProgressDisplay, RunCounters
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings

DEFAULT_SEGMENT_CHARS = 8_000


class RunError(Exception):
    """A run that cannot start or cannot go on; the message is meant for the user."""


class SettingsMismatch(RunError):
    """The run folder was made with settings that produce different outputs."""


class EndpointUnreachable(RunError):
    """The model server cannot be reached."""


FAILED_CODES = frozenset({"transport", "infrastructure"})
SANDBOX_FAILURE = "the sandbox failed"
"""How an `infrastructure` reject's reason begins (see `nodes.failure_handler`)."""
"""Reject codes that say the machine failed, not the document: stored `failed`, retried."""


@dataclass
class RunOptions:
    """One invocation of a run: where it writes and how it reports. How the run is carried
    out (concurrency, limits, cache, segments) is `Settings.run`."""

    run_dir: Path
    force_new_settings: bool = False
    """Continue a run folder made with different output settings. Finished documents are
    kept as they are; only new and failed documents use the new settings."""
    progress: bool = True
    total: int | None = None
    """Input documents expected, for the progress bar's ETA."""
    endpoint: str | None = None
    """Where the model is served, for messages (default: the model's base URL)."""
    preflight: bool = True
    """Check that the model server accepts connections before starting."""
    command: list[str] | None = None
    """The command line, recorded in the store."""
    shard: tuple[int, int] | None = None
    """`(index, count)`: handle only the input entries `shard_of(position, count) == index`
    (positions count entries from 0 in corpus order, as `limit` does). Set by
    the multi-process runner for each worker; None handles every document."""


def segment_size(settings: Settings) -> int:
    """The run's segment size: `run.segment_chars`, else min(8,000, max_text_chars)."""
    size = settings.run.segment_chars or min(
        DEFAULT_SEGMENT_CHARS, settings.pipeline.max_text_chars
    )
    if size > settings.pipeline.max_text_chars:
        raise RunError(
            f"segment size {size} is over the pipeline's max_text_chars "
            f"({settings.pipeline.max_text_chars}); lower it or raise max_text_chars"
        )
    return size


def cache_file(settings: Settings, run_dir: Path) -> Path | None:
    """Where the LLM response cache lives: `run.cache` true → in the run folder."""
    cache = settings.run.cache
    if cache is True:
        return run_dir / "llm_cache.sqlite"
    return None if cache is False else Path(cache)


@dataclass
class RunSummary:
    """What one `run_corpus` call did, plus the whole store's summary."""

    run_dir: Path
    processed: int
    skipped: int
    kept: int
    rejected: int
    failed: int
    records: int
    wall_seconds: float
    stopped_reason: str | None
    summary: dict[str, Any] = field(default_factory=dict)
    cache_hits: int = 0

    @property
    def complete(self) -> bool:
        """True when the run was not stopped and no document failed on the transport."""
        return self.stopped_reason is None and self.failed == 0


def shard_of(ordinal: int, count: int) -> int:
    """The worker (0 … count-1) that handles the input entry at position `ordinal`.

    Entries are dealt round-robin in corpus order: every worker reads the same stream, so
    each entry goes to exactly one worker, a re-run of the same input gives every worker the
    same entries, and the shares differ by at most one entry (a hash of the id would leave
    one worker running alone at the end). Every segment of a document goes to the worker of
    its input entry.
    """
    return ordinal % count


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


def check_settings(
    store: RunStore, settings: Settings, options: RunOptions
) -> tuple[str, dict[str, Any]]:
    """Refuse a run folder made with output-changing settings unless forced; record ours."""
    outputs = output_settings(settings, segment_chars=segment_size(settings))
    current = fingerprint(outputs)
    previous = store.get_meta("fingerprint")
    if previous is not None and previous != current and not options.force_new_settings:
        changes = differences(store.get_meta("output_settings") or {}, outputs)
        shown = "; ".join(changes[:6]) + (" …" if len(changes) > 6 else "")
        raise SettingsMismatch(
            f"{options.run_dir} was run with different settings ({shown}); use a new "
            "output folder, or pass --force-new-settings to continue it with the new ones"
        )
    cache = cache_file(settings, options.run_dir)
    store.set_meta(
        {
            "fingerprint": current,
            "output_settings": outputs,
            "settings": settings_snapshot(settings),
            "versions": versions(),
            "options": {
                "concurrency": settings.run.concurrency,
                "limit": settings.run.limit,
                "requests_per_second": settings.run.requests_per_second,
                "segment_chars": segment_size(settings),
                "max_segments": settings.run.max_segments,
                "cache_path": str(cache)
                if (cache := cache_file(settings, options.run_dir))
                else None,
                "command": options.command,
            },
        }
    )
    return current, outputs


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def _isolation_label(records: list[dict[str, Any]]) -> str | None:
    """The sandbox isolation the records report (`verification.isolation`), as text."""
    for record in records:
        isolation = (record.get("verification") or {}).get("isolation")
        if isinstance(isolation, str):
            return isolation
        if isinstance(isolation, Mapping):
            if isinstance(isolation.get("tier"), str):
                return str(isolation["tier"])
            layers = sorted(k for k, v in isolation.items() if v is True)
            return "+".join(layers) or None
    return None


def save_environments(
    store: RunStore, run_dir: Path, environments: list[dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    """Write each environment not yet in the store to `run_dir/environments/<name>/`.

    `environments` are the document graph's output entries (manifest, schema_sql, seed,
    tools_py). A name already used by different content gets a `-<sha8>` suffix. Each folder
    is written under a temporary name and renamed, so a kill never leaves half a folder.
    Returns content hash → (environment name, folder relative to `run_dir`) for the store.
    """
    from gem_graph.environment import EnvironmentFormatError
    from gem_graph.stages.implement import environment_from_state

    env_dir = run_dir / "environments"
    saved: dict[str, tuple[str, str]] = {}
    for data in environments:
        try:
            env = environment_from_state(data)
        except (EnvironmentFormatError, KeyError, TypeError):
            continue
        sha = env.content_hash()
        if sha in saved or store.environment_path(sha):
            continue
        name = _SAFE_NAME.sub("_", env.name).strip("._") or "environment"
        for candidate in (name, f"{name}-{sha[:8]}"):
            folder = env_dir / candidate
            if _place_environment(env, sha, folder):
                saved[sha] = (env.name, folder.relative_to(run_dir).as_posix())
                break
    return saved


def _place_environment(env: Any, sha: str, folder: Path) -> bool:
    """Make `folder` hold `env`; False when it holds a different environment.

    Several worker processes may save the same environment at once: each writes its own
    staging folder and renames it; a rename that loses the race (the folder appeared in
    between) drops its copy and checks what the winner wrote.
    """
    from gem_graph.environment import save_environment

    if folder.exists():
        return _holds_environment(folder, sha)
    staging = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    save_environment(env, staging)
    try:
        os.replace(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return _holds_environment(folder, sha)
    return True


def _holds_environment(folder: Path, sha: str) -> bool:
    from gem_graph.environment import EnvironmentFormatError, load_environment

    try:
        return load_environment(folder).content_hash() == sha
    except EnvironmentFormatError:
        return False


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
    ) -> None:
        self.graph = graph
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
        started = time.time()
        try:
            out = await self.graph.ainvoke({"document": document})
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
        usage = summarize_usage(list(out.get("usage") or []))
        if records:
            status, stage = "kept", "emit"
        elif reject is not None and reject.get("code") in FAILED_CODES:
            status, stage = "failed", str(reject.get("stage") or "?")
        else:
            status, stage = "rejected", str((reject or {}).get("stage") or "?")
        saved = save_environments(
            self.store, self.options.run_dir, list(out.get("environments") or [])
        )
        self.store.save_document(
            {**document, "text_sha256": text_sha256(document["text"])},
            status=status,
            stage=stage,
            records=records,
            reject=reject,
            usage=usage,
            started_at=started,
            finished_at=finished,
            settings_fingerprint=self.fingerprint,
            environments=saved,
            isolation=_isolation_label(records),
        )
        self._count(status, stage, records, usage, weight, reject)

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

    This is the part of a run that both `run_corpus` and each worker process carry out.
    """
    from gem_graph.graph import build_gem_graph
    from gem_graph.synthesizer import build_synthesizer_graph

    cache: SQLiteLLMCache | None = None
    sandbox: Any = None
    try:
        cache_path = cache_file(settings, options.run_dir)
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
        graph = factory(llm=model, settings=settings, sandbox=sandbox)
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
    finally:
        if sandbox is not None:
            await sandbox.aclose()
        if cache is not None:
            cache.close()


def cache_namespace() -> str:
    """The LLM cache namespace: every stage prompt's `name@version`."""
    return "|".join(f"{k}={v}" for k, v in sorted(prompt_versions().items()))


def close_session(
    store: RunStore, session: int, counters: RunCounters, stopped: str | None
) -> dict[str, Any]:
    """End the store's session (if one started) and close the store; returns its summary."""
    if session:
        store.finish_session(session, processed=counters.processed, stopped_reason=stopped)
    summary = store.summary()
    store.close()
    return summary


def run_summary(
    options: RunOptions,
    counters: RunCounters,
    *,
    started: float,
    stopped_reason: str | None,
    summary: dict[str, Any],
    cache_hits: int,
) -> RunSummary:
    """The `RunSummary` of a session from its counters and the store's summary."""
    return RunSummary(
        run_dir=options.run_dir,
        processed=counters.processed,
        skipped=counters.skipped,
        kept=counters.kept,
        rejected=counters.rejected_total,
        failed=counters.failed,
        records=counters.records,
        wall_seconds=round(time.monotonic() - started, 3),
        stopped_reason=stopped_reason,
        summary=summary,
        cache_hits=cache_hits,
    )


async def run_corpus(
    items: Iterable[CorpusItem],
    *,
    llm: BaseChatModel,
    settings: Settings,
    options: RunOptions,
) -> RunSummary:
    """Run every item through the document graph (or, in synthesizer mode, the synthesizer
    graph) into the store in `options.run_dir`, in this process.

    Works with any `BaseChatModel` (ChatOpenAI, the scripted model, …). Raises
    `SettingsMismatch` when the folder was made with other output settings,
    `EndpointUnreachable` when the preflight cannot connect, and `RunError` for bad options;
    document-level problems never raise. Runs over several processes
    (`settings.run.workers > 1`) go through `gem_graph.run.workers.run_corpus_workers`.
    """
    if settings.run.workers != 1:
        raise RunError(
            "a run over several worker processes needs a corpus path and a model factory: "
            "use gem_graph.run.workers.run_corpus_workers"
        )
    segment_size(settings)
    endpoint = options.endpoint or model_endpoint(llm)
    if options.preflight and endpoint:
        preflight(endpoint)
    store = RunStore(options.run_dir, create=True)
    counters = RunCounters(total=options.total)
    session = 0
    started = time.monotonic()
    stopped: str | None = "interrupted"
    outcome = ShardOutcome(stopped_reason=stopped)
    try:
        current, _ = check_settings(store, settings, options)
        session = store.start_session(current)
        outcome = await run_shard(
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
