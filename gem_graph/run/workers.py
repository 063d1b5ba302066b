"""Corpus runs over several OS processes sharing one run store.

One Python process running the document graph is CPU-bound long before the model server
is (LangGraph, LangChain and the OpenAI client cost tens of milliseconds per document), so
`run_corpus_workers` runs the same runner in `settings.run.workers` processes:

- the parent checks the settings, the endpoint and the settings, starts the session and
  creates the LLM cache, so workers never race on initialisation;
- every worker (a fresh "spawn" process) reads the whole corpus and handles the entries
  dealt to it round-robin in corpus order (`shard_of`), so a re-run of the same input gives
  each worker the same documents and the shares are even; it rebuilds the model from the
  settings with a picklable `model_factory`;
- concurrency and the request rate are split across the workers (the total in flight stays
  `run.concurrency`); every worker writes its documents to the same store (SQLite,
  `BEGIN IMMEDIATE` and a busy timeout) and its environments to `RUN_DIR/environments`;
- workers report their counters to the parent as plain JSON over a pipe; the parent shows
  the live progress and, when one worker stops (the model server is down) or dies, stops the
  others. Ctrl-C or SIGTERM to the parent ends the workers, and a worker whose parent died
  (even by SIGKILL) stops on its own, so no process outlives the run.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.run.cache import SQLiteLLMCache
from gem_graph.run.endpoint import model_endpoint, preflight
from gem_graph.run.options import RunError, RunOptions, RunSummary, cache_file, segment_size
from gem_graph.run.report import ProgressDisplay, RunCounters
from gem_graph.run.session import cache_namespace, check_settings, close_session, run_summary
from gem_graph.run.store import RunStore
from gem_graph.run.worker_process import (
    REPORT_EVERY_S,
    CorpusSource,
    ModelFactory,
    worker_main,
)
from gem_graph.settings import Settings

STOP_GRACE_S = 5.0


def settings_model(settings: Settings) -> BaseChatModel:
    """The default model factory: `make_chat_model(settings.model)`; the worker closes it."""
    from gem_graph.llm import make_chat_model

    return make_chat_model(settings.model)


def split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` whole shares differing by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# ---- counters over the pipe -----------------------------------------------------------------


def add_counters(into: RunCounters, reports: list[dict[str, Any]]) -> None:
    """Set `into` to the sum of the workers' latest reports (its total and clock are kept)."""
    into.done = sum(float(r.get("done", 0.0)) for r in reports)
    for name in ("kept", "records", "failed", "skipped", "processed"):
        setattr(into, name, sum(int(r.get(name, 0)) for r in reports))
    into.input_tokens = sum(int(r.get("input_tokens", 0)) for r in reports)
    into.output_tokens = sum(int(r.get("output_tokens", 0)) for r in reports)
    rejected: Counter[str] = Counter()
    for report in reports:
        rejected.update({str(k): int(v) for k, v in (report.get("rejected") or {}).items()})
    into.rejected = rejected


# ---- parent -----------------------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    report: dict[str, Any]
    final: dict[str, Any] | None = None


def run_corpus_workers(
    source: CorpusSource,
    *,
    settings: Settings,
    options: RunOptions,
    model_factory: ModelFactory = settings_model,
) -> RunSummary:
    """Run the corpus at `source` into `options.run_dir` with `run.workers` processes.

    Same outcome, errors and summary as `run_corpus`; blocks until the workers are done.
    Workers are "spawn" processes: a script calling this needs the usual
    `if __name__ == "__main__":` guard, and `model_factory` must be a module-level function.
    """
    segment_size(settings)
    count = min(settings.run.workers, settings.run.concurrency)
    endpoint = options.endpoint or model_endpoint(model_factory(settings))
    if options.preflight and endpoint:
        preflight(endpoint)
    store = RunStore(options.run_dir, create=True)
    counters = RunCounters(total=options.total)
    session = 0
    started = time.monotonic()
    stopped: str | None = "interrupted"
    workers: list[_Worker] = []
    cache_hits = 0
    try:
        current, _ = check_settings(store, settings, options)
        session = store.start_session(current)
        cache_path = cache_file(settings, options.run_dir)
        if cache_path is not None:
            SQLiteLLMCache(cache_path, namespace=cache_namespace()).close()
        with _parent_signals():
            workers = _start(source, settings, options, model_factory, current, endpoint, count)
            with ProgressDisplay(counters, enabled=options.progress):
                stopped = _supervise(workers, counters)
        cache_hits = sum(int((w.final or {}).get("cache_hits", 0)) for w in workers)
    finally:
        _end(workers)
        if workers:
            add_counters(counters, [w.report for w in workers])
        summary = close_session(store, session, counters, stopped)
    return run_summary(
        options,
        counters,
        started=started,
        stopped_reason=stopped,
        summary=summary,
        cache_hits=cache_hits,
    )


def _start(
    source: CorpusSource,
    settings: Settings,
    options: RunOptions,
    model_factory: ModelFactory,
    fingerprint: str,
    endpoint: str | None,
    count: int,
) -> list[_Worker]:
    context = multiprocessing.get_context("spawn")
    rps = settings.run.requests_per_second
    workers: list[_Worker] = []
    for index, share in enumerate(split(settings.run.concurrency, count)):
        worker_settings = settings.model_copy(
            update={
                "run": settings.run.model_copy(
                    update={
                        "concurrency": share,
                        "requests_per_second": rps / count if rps else None,
                        "workers": 1,
                    }
                )
            }
        )
        worker_options = replace(
            options, progress=False, preflight=False, total=None, shard=(index, count)
        )
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker_main,
            args=(
                child_end,
                os.getpid(),
                source,
                worker_settings,
                worker_options,
                model_factory,
                fingerprint,
                endpoint,
            ),
            name=f"gem-graph-worker-{index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        workers.append(_Worker(index, process, parent_end, {}))
    return workers


def _supervise(workers: list[_Worker], counters: RunCounters) -> str | None:
    """Collect reports until every worker is done; the first stop reason ends the others."""
    stopped: str | None = None
    live = {w.conn: w for w in workers}
    while live:
        for conn in wait(list(live), timeout=REPORT_EVERY_S):
            worker = live[conn]  # type: ignore[index]
            try:
                message = json.loads(worker.conn.recv_bytes())
            except (EOFError, OSError, ValueError):
                del live[worker.conn]
                if worker.final is None:
                    worker.process.join(timeout=STOP_GRACE_S)
                    code = worker.process.exitcode
                    reason = f"worker {worker.index} ended unexpectedly (exit code {code})"
                    stopped = stopped or reason
                    _stop_others(workers)
                continue
            worker.report = message.get("counters") or worker.report
            if message.get("final"):
                worker.final = message
                error = message.get("error")
                reason = message.get("stopped_reason")
                if error:
                    _stop_others(workers)
                    raise RunError(str(error))
                if reason and stopped is None:
                    stopped = str(reason)
                    _stop_others(workers)
        add_counters(counters, [w.report for w in workers])
    return stopped


def _stop_others(workers: list[_Worker]) -> None:
    for worker in workers:
        if worker.final is None and worker.process.is_alive():
            with contextlib.suppress(OSError):
                worker.process.terminate()


def _end(workers: list[_Worker]) -> None:
    """Make sure no worker outlives the run: SIGTERM, a grace period, then SIGKILL."""
    _stop_others(workers)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in workers:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=STOP_GRACE_S)
        worker.conn.close()


@contextlib.contextmanager
def _parent_signals() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while workers run, so the cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
