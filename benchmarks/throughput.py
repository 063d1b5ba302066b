"""Runner throughput against an OpenAI-compatible loopback server with a fixed latency per call.

    python benchmarks/throughput.py [--latency 0.2] [--repeat 3] [--memory-docs 300]

The server runs in its own process (so its threads do not compete with the runner for the
GIL) and answers every stage of a small procedure with scripted JSON after `--latency`
seconds. For each concurrency the runner processes a corpus of 10 documents per slot, in
this process and over two worker processes sharing the store (`run_corpus_workers`,
`--workers 2`; their start-up is included), and the table compares documents/s with the
ideal bound concurrency / (calls per document × latency), next to the bare document graph
(no runner, no store). Ten documents per slot measure a corpus run rather than its first
wave: with a fixed latency, documents that start together keep asking for the CPU
together, and a short run is mostly that first convoy. Execution is off for the main table
(the runner's own overhead); when the sandbox is available more rows run with execution on
(implement + sandbox replay of the retail reference environment), and rows labelled aiohttp
use the OpenAI SDK's aiohttp transport (`--http-client aiohttp`). `--repeat N` runs every
row N times and reports the median ratio and its range: on a shared 2-core VM the same run
varies by ±15%. Memory per 1,000 documents in flight is the RSS high-water mark of a forked
child running `--memory-docs` documents all in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gem_graph.corpus import read_corpus  # noqa: E402
from gem_graph.llm import aclose_chat_model, make_chat_model  # noqa: E402
from gem_graph.runner import RunOptions, run_corpus  # noqa: E402
from gem_graph.settings import HttpClient, ModelSettings, PipelineSettings, Settings  # noqa: E402
from gem_graph.testing.openai_server import (  # noqa: E402
    Answer,
    Fault,
    LoopbackOpenAIServer,
    requested_schema_name,
    structured_answer,
)
from gem_graph.testing.reference_replies import (  # noqa: E402
    FILTER_OK,
    JUDGE_OK,
    RETAIL_TEXT,
    extract_reply,
    gold_record,
    implement_reply,
    reference_environment,
    trajectory_reply,
)
from gem_graph.workers import CorpusSource, run_corpus_workers  # noqa: E402

TEXT = RETAIL_TEXT


def _payloads() -> dict[str, dict[str, Any]]:
    """Stage answers built from the retail reference environment and its first gold dialogue."""
    env = reference_environment("retail")
    gold = gold_record("retail", 0)
    return {
        "FilterOutput": FILTER_OK,
        "ExtractOutput": extract_reply(env, gold, TEXT),
        "ImplementOutput": implement_reply(env),
        "TrajectoryOutput": trajectory_reply(gold),
        "JudgeOutput": JUDGE_OK,
    }


PAYLOADS: dict[str, dict[str, Any]] = {}


def respond(request: dict[str, Any]) -> Answer | Fault:
    if not PAYLOADS:
        PAYLOADS.update(_payloads())
    name = requested_schema_name(request) or "FilterOutput"
    return structured_answer(request, PAYLOADS[name])


def _serve(latency: float, pipe: Any) -> None:
    """Server process: serve until told to stop, then report how many requests it answered."""
    from gem_graph.testing import openai_server

    # One segment per reply: without this, Nagle + delayed ACK add ~40 ms to each call.
    openai_server._Handler.disable_nagle_algorithm = True
    with LoopbackOpenAIServer(respond, latency_s=latency) as server:
        server._server.socket.listen(4096)  # room for 1,000 connections at once
        pipe.send(server.base_url)
        pipe.recv()
        pipe.send(len(server.requests))


def settings_for(base_url: str, *, execute: bool, http_client: HttpClient = "httpx") -> Settings:
    return Settings(
        model=ModelSettings(
            name="bench",
            base_url=base_url,
            timeout_s=60,
            retry_initial_s=0.05,
            http_client=http_client,
        ),
        pipeline=PipelineSettings(execute=execute, refine=False, judge=True),
    )


def calls_per_document(execute: bool) -> int:
    return 5 if execute else 4  # filter, extract, [implement], ground, judge


def write_corpus(folder: Path, n: int) -> Path:
    path = folder / f"corpus-{n}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"d{i:06d}", "text": f"{TEXT}\nEntry {i}."}) + "\n")
    return path


async def one_run(
    base_url: str,
    corpus: Path,
    run_dir: Path,
    *,
    concurrency: int,
    execute: bool,
    workers: int = 1,
    http_client: HttpClient = "httpx",
) -> tuple[float, int, int]:
    """One run session (in this process, or over `workers` processes); returns (seconds,
    kept, processed)."""
    settings = settings_for(base_url, execute=execute, http_client=http_client)
    options = RunOptions(run_dir=run_dir, concurrency=concurrency, progress=False, workers=workers)
    started = time.perf_counter()
    if workers > 1:
        # Blocks this event loop while the workers run; nothing else uses it meanwhile.
        result = run_corpus_workers(CorpusSource(corpus), settings=settings, options=options)
        return time.perf_counter() - started, result.kept, result.processed
    llm = make_chat_model(settings.model)
    try:
        result = await run_corpus(read_corpus(corpus), llm=llm, settings=settings, options=options)
    finally:
        await aclose_chat_model(llm)
    return time.perf_counter() - started, result.kept, result.processed


async def bare_graph(base_url: str, n: int, *, concurrency: int) -> tuple[float, int, int]:
    """The document graph alone under a semaphore (no store, no runner), for comparison."""
    from gem_graph.graph import build_gem_graph

    settings = settings_for(base_url, execute=False)
    graph = build_gem_graph(llm=make_chat_model(settings.model), settings=settings)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> int:
        async with gate:
            out = await graph.ainvoke({"document": {"id": f"b{i}", "text": f"{TEXT}\n{i}"}})
            return len(out["records"])

    started = time.perf_counter()
    kept = sum(await asyncio.gather(*(one(i) for i in range(n))))
    return time.perf_counter() - started, kept, n


def _memory_child(base_url: str, corpus: Path, run_dir: Path, n: int, pipe: Any) -> None:
    """Forked child: RSS high-water mark minus the starting RSS over one run of n in flight."""

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status("VmRSS")
    asyncio.run(one_run(base_url, corpus, run_dir, concurrency=n, execute=False))
    pipe.send(status("VmHWM") - before)


def sandbox_available() -> bool:
    from gem_graph.sandbox import probe

    return probe()["tiers"].get("standard") is True


@dataclass
class Row:
    """One line of the table: every repetition of one (mode, concurrency) run."""

    label: str
    concurrency: int
    documents: int
    ideal: float
    kept: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [self.documents / s / self.ideal for s in self.seconds]


class Case(NamedTuple):
    """One row of the plan."""

    label: str
    concurrency: int
    documents: int
    execute: bool = False
    workers: int = 1
    http_client: HttpClient = "httpx"


Plan = list[Case]


def cpu_seconds() -> float:
    """CPU time of this process plus its finished (joined) children, i.e. the workers."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def measure(base_url: str, work: Path, plan: Plan, latency: float, repeat: int) -> list[Row]:
    """Run every row of the plan `repeat` times, after a short warm-up run.

    Repetitions go round the whole plan rather than row by row, so that a slow spell of
    the machine spreads over the rows instead of landing on one.
    """
    await one_run(base_url, write_corpus(work, 4), work / "warm", concurrency=4, execute=False)
    rows = [
        Row(
            c.label,
            c.concurrency,
            c.documents,
            c.concurrency / (calls_per_document(c.execute) * latency),
        )
        for c in plan
    ]
    for round_ in range(repeat):
        for index, case in enumerate(plan):
            label, concurrency, n = case.label, case.concurrency, case.documents
            cpu = cpu_seconds()
            if label == "bare graph":
                seconds, kept, processed = await bare_graph(base_url, n, concurrency=concurrency)
            else:
                seconds, kept, processed = await one_run(
                    base_url,
                    write_corpus(work, n),
                    work / f"run-{round_}-{index}",
                    concurrency=concurrency,
                    execute=case.execute,
                    workers=case.workers,
                    http_client=case.http_client,
                )
            row = rows[index]
            row.kept.append(kept)
            row.seconds.append(seconds)
            row.cpu_ms.append((cpu_seconds() - cpu) / processed * 1000)
            print(
                f"  {label:17} c={concurrency:<4} {processed} docs in {seconds:.1f} s "
                f"({processed / seconds:.1f}/s, ratio {row.ratios[-1]:.2f})",
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per row; the table shows the median"
    )
    parser.add_argument(
        "--docs-per-slot",
        type=int,
        default=10,
        help="documents per unit of concurrency (half at concurrency 128 and with execution on)",
    )
    parser.add_argument(
        "--memory-docs",
        type=int,
        default=300,
        help="documents in flight for the memory measurement (0: skip)",
    )
    args = parser.parse_args()

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(args.latency, child), daemon=True)
    server.start()
    base_url = parent.recv()
    work = Path(tempfile.mkdtemp(prefix="gem-bench-"))
    rows: list[Row] = []
    memory: float | None = None
    per_slot = args.docs_per_slot
    plan: Plan = [
        Case("runner, exec off", 1, per_slot),
        Case("runner, exec off", 8, 8 * per_slot),
        Case("runner, exec off", 32, 32 * per_slot),
        Case("runner, exec off", 128, 128 * per_slot // 2),
        Case("2 workers, off", 8, 8 * per_slot, workers=2),
        Case("2 workers, off", 32, 32 * per_slot, workers=2),
        Case("2 workers, off", 128, 128 * per_slot // 2, workers=2),
        Case("aiohttp, off", 8, 8 * per_slot, http_client="aiohttp"),
        Case("aiohttp, off", 32, 32 * per_slot, http_client="aiohttp"),
        Case("aiohttp, off", 128, 128 * per_slot // 2, http_client="aiohttp"),
        Case("aiohttp 2 workers", 32, 32 * per_slot, workers=2, http_client="aiohttp"),
        Case("bare graph", 32, 32 * per_slot),
    ]
    if sandbox_available():
        plan.append(Case("runner, exec on", 32, 16 * per_slot, execute=True))
        plan.append(Case("2 workers, on", 32, 16 * per_slot, execute=True, workers=2))
    try:
        if args.memory_docs:
            # First, in a fresh child: nothing has used an event loop or a client yet.
            n = args.memory_docs
            got, send = ctx.Pipe()
            proc = ctx.Process(
                target=_memory_child,
                args=(base_url, write_corpus(work, n), work / "run-mem", n, send),
            )
            proc.start()
            delta = got.recv()
            proc.join()
            memory = delta / 1e6 / n * 1000
        # All rows share one event loop: the OpenAI client pools connections per loop.
        rows = asyncio.run(measure(base_url, work, plan, args.latency, args.repeat))
    finally:
        parent.send("stop")
        total_requests = parent.recv() if parent.poll(10) else None
        server.join(timeout=5)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"Runner throughput, {args.latency * 1000:.0f} ms per model call "
        f"(loopback server in its own process, {os.cpu_count()} CPUs)"
    )
    print(
        f"{'mode':17} {'conc.':>5} {'docs':>5} {'kept':>5} {'wall s':>7} {'docs/s':>7} "
        f"{'ideal/s':>8} {'ratio':>6} {'range':>11} {'CPU ms/doc':>11}"
    )
    for row in rows:
        seconds = statistics.median(row.seconds)
        ratios = row.ratios
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if len(ratios) > 1 else "–"
        print(
            f"{row.label:17} {row.concurrency:5} {row.documents:5} {min(row.kept):5} "
            f"{seconds:7.2f} {row.documents / seconds:7.1f} {row.ideal:8.1f} "
            f"{statistics.median(ratios):6.2f} {spread:>11} "
            f"{statistics.median(row.cpu_ms):11.0f}"
        )
    if args.repeat > 1:
        print(f"median of {args.repeat} runs per row; range: lowest–highest ratio")
    print(
        "ideal = concurrency / (calls per document × latency); calls per document: 4 with "
        "execution off (filter, extract, ground, judge), 5 with it on (+ implement)."
    )
    print(
        "CPU ms/doc: client CPU time per document (graph, LangChain, OpenAI client, runner, "
        "store; with workers, the parent plus the workers, start-up included); the server's "
        "CPU is not included."
    )
    print(
        "2 workers: run_corpus_workers (gem-graph run --workers 2), concurrency split between "
        "two spawned processes sharing the store; wall time includes their start-up."
    )
    print(
        "aiohttp: the runner with http_client = 'aiohttp' (gem-graph run --http-client "
        "aiohttp); other rows use the default httpx client."
    )
    if memory is not None:
        print(
            f"memory: ≈ {memory:.0f} MB RSS per 1,000 documents in flight "
            f"(high-water mark over {args.memory_docs} in flight at once, scaled)"
        )
    if total_requests is not None:
        print(f"model requests served: {total_requests:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
