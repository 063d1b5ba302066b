"""What runs in each worker process of a multi-process corpus run (see `workers`).

A worker reads the whole corpus itself (`CorpusSource`), runs its shard through the
runner, reports its counters to the parent as plain JSON over a pipe every
`REPORT_EVERY_S`, and stops when the parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.llm import aclose_chat_model
from gem_graph.run.corpus import CorpusItem, read_corpus
from gem_graph.run.report import RunCounters
from gem_graph.run.runner import (
    RunError,
    RunOptions,
    ShardOutcome,
    run_shard,
)
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings

ModelFactory = Callable[[Settings], BaseChatModel]
"""Builds the chat model in each worker; must be picklable (a module-level function)."""
REPORT_EVERY_S = 0.25


@dataclass(frozen=True)
class CorpusSource:
    """Where the corpus is, so that each worker can read it itself."""

    path: Path
    text_field: str = "text"
    id_field: str = "id"

    def read(self) -> Iterator[CorpusItem]:
        return read_corpus(self.path, text_field=self.text_field, id_field=self.id_field)


def counters_json(counters: RunCounters) -> dict[str, Any]:
    """The counters a worker reports (plain JSON)."""
    return {
        "done": counters.done,
        "kept": counters.kept,
        "records": counters.records,
        "failed": counters.failed,
        "skipped": counters.skipped,
        "processed": counters.processed,
        "rejected": dict(counters.rejected),
        "input_tokens": counters.input_tokens,
        "output_tokens": counters.output_tokens,
    }


def worker_main(
    conn: Connection,
    parent_pid: int,
    source: CorpusSource,
    settings: Settings,
    options: RunOptions,
    model_factory: ModelFactory,
    fingerprint: str,
    endpoint: str | None,
) -> None:
    """Entry point of a worker process: run one shard, report over `conn`, exit quietly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    _die_with_parent()
    # This process is ours alone: keep the imported modules out of the collector's scans and
    # collect less often (thousands of short-lived objects per model call), ~10% less CPU.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    counters = RunCounters()
    final: dict[str, Any] = {"final": True}
    try:
        outcome = asyncio.run(
            _worker_run(
                conn, parent_pid, source, settings, options, model_factory, fingerprint, endpoint,
                counters,
            )
        )  # fmt: skip
        final.update(stopped_reason=outcome.stopped_reason, cache_hits=outcome.cache_hits)
    except asyncio.CancelledError:
        final.update(stopped_reason="interrupted")
    except Exception as exc:  # reported to the parent as one line
        message = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
        final.update(error=f"worker {options.shard}: {message}"[:2000])
    final["counters"] = counters_json(counters)
    with contextlib.suppress(OSError, ValueError):
        conn.send_bytes(json.dumps(final).encode("utf-8"))
    conn.close()


async def _worker_run(
    conn: Connection,
    parent_pid: int,
    source: CorpusSource,
    settings: Settings,
    options: RunOptions,
    model_factory: ModelFactory,
    fingerprint: str,
    endpoint: str | None,
    counters: RunCounters,
) -> ShardOutcome:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    reporter = asyncio.create_task(_report(conn, parent_pid, counters, main))
    store = RunStore(options.run_dir)
    llm = model_factory(settings)
    try:
        return await run_shard(
            source.read(),
            llm=llm,
            settings=settings,
            options=options,
            store=store,
            settings_fingerprint=fingerprint,
            endpoint=endpoint,
            counters=counters,
        )
    finally:
        reporter.cancel()
        store.close()
        await aclose_chat_model(llm)


async def _report(
    conn: Connection, parent_pid: int, counters: RunCounters, main: asyncio.Task[Any]
) -> None:
    """Send the counters every `REPORT_EVERY_S`; cancel the run when the parent is gone."""
    last: dict[str, Any] = {}
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        if os.getppid() != parent_pid:
            main.cancel()
            return
        current = counters_json(counters)
        if current == last:
            continue
        try:
            conn.send_bytes(json.dumps({"counters": current}).encode("utf-8"))
        except (OSError, ValueError):
            main.cancel()
            return
        last = current


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent dies (`getppid` polling is the fallback)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
