"""Runner throughput against an OpenAI-compatible loopback server with a fixed latency per call.

    python benchmarks/throughput.py [--latency 0.2] [--repeat 3] [--memory-docs 300]
        [--cpu-docs 30] [--rounds 3] [--cpu-latency 0.05] [--only throughput|cpu|ray]

The server runs in its own process (so its threads do not compete with the runner for the
GIL) and answers every stage of a small procedure with scripted JSON after `--latency`
seconds. For each concurrency the runner processes a corpus of 10 documents per slot, in
this process and on a local Ray with two actors (`--workers 2`; Ray's and the actors'
start-up are included), and the table compares documents/s with the
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

A second table (`--only cpu` prints it alone) gives, for execution off and on, the CPU per
document of every process, this one (the client) plus the sandbox's fork server, templates
and episodes, divided by the CPU of the same documents' bare `ChatOpenAI` calls replayed in
the same run; targets: off ≤ 1.3×, on ≤ 2.0×. A warm-up run of `--cpu-docs` documents per
mode records the requests its stages sent (at the loopback server, which for this table runs
with `--cpu-latency`); each of `--rounds` rounds then runs the documents again through
`run_corpus` (concurrency 8) and sends the recorded requests (messages and response_format,
the same request bodies) through `ChatOpenAI.ainvoke` at the same concurrency. The ratio is
taken within each round; the table shows its median and range, next to the client and
sandbox shares. CPU is CPU time (`time.process_time()` here; the sandbox's processes from
/proc, see `metered_sandboxes`), so the wall time of a shared machine does not enter it.

A third table (`--only ray`) puts the Ray engine beside the local engine in one run: the
same corpus (execution off, `--latency`, `--docs-per-slot` documents per slot) at
concurrency 8 and 32 through the local engine, then on a local Ray of one CPU (1 actor)
and of two CPUs (2 actors). Ray itself is started once per size, outside the timed runs
(its start-up is shown apart); each run's actor start-up is included. CPU per document is
split into the driver (this process: corpus, store, routing), the actors (from their
creation: graph set-up and documents) and Ray's processes (GCS, raylet, agents, and the
start of worker processes); Ray's
overhead per document is the total minus the local engine's CPU per document at the same
concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gem_graph.llm import aclose_chat_model, make_chat_model  # noqa: E402
from gem_graph.run.corpus import read_corpus  # noqa: E402
from gem_graph.run.runner import RunOptions, run_corpus  # noqa: E402
from gem_graph.settings import (  # noqa: E402
    HttpClient,
    ModelSettings,
    PipelineSettings,
    RunSettings,
    Settings,
)
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
    """Server process: serve until told to stop, then report how many requests it answered.

    On "take" it sends the bodies of the requests received since the last "take" (and
    forgets them).
    """
    from gem_graph.testing import openai_server

    # One segment per reply: without this, Nagle + delayed ACK add ~40 ms to each call.
    openai_server._Handler.disable_nagle_algorithm = True
    with LoopbackOpenAIServer(respond, latency_s=latency) as server:
        server._server.socket.listen(4096)  # room for 1,000 connections at once
        pipe.send(server.base_url)
        taken = 0
        while pipe.recv() == "take":
            received = server.requests[:]
            del server.requests[: len(received)]
            taken += len(received)
            pipe.send([request["json"] for request in received])
        pipe.send(taken + len(server.requests))


class ModelServer:
    """The loopback server (`_serve`) in a process of its own, driven over a pipe."""

    def __init__(self, latency: float) -> None:
        ctx = mp.get_context("fork")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(latency, child), daemon=True)
        self._process.start()
        self.base_url: str = self._pipe.recv()

    def take_requests(self) -> list[dict[str, Any]]:
        """The request bodies received since the last call."""
        self._pipe.send("take")
        requests: list[dict[str, Any]] = self._pipe.recv()
        return requests

    def stop(self) -> int | None:
        """Stop the server; returns how many requests it answered (None: no answer)."""
        self._pipe.send("stop")
        served: int | None = self._pipe.recv() if self._pipe.poll(10) else None
        self._process.join(timeout=5)
        return served


def settings_for(
    base_url: str,
    *,
    execute: bool,
    http_client: HttpClient = "httpx",
    concurrency: int = 8,
    workers: int = 1,
) -> Settings:
    return Settings(
        model=ModelSettings(
            name="bench",
            base_url=base_url,
            timeout_s=60,
            retry_initial_s=0.05,
            http_client=http_client,
            probe=False,  # the scripted server answers the stages only; not part of a run's rate
        ),
        pipeline=PipelineSettings(execute=execute, refine=False, judge=True),
        run=RunSettings(concurrency=concurrency, workers=workers, cache=False),
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
    """One run session (in this process, or with `workers` > 1 on a local Ray with that many
    actors); returns (seconds, kept, processed)."""
    settings = settings_for(
        base_url,
        execute=execute,
        http_client=http_client,
        concurrency=concurrency,
        workers=workers,
    )
    options = RunOptions(run_dir=run_dir, progress=False)
    started = time.perf_counter()
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


def throughput_tables(args: argparse.Namespace) -> None:
    """Documents/s against the ideal bound, CPU and memory per document (the first table)."""
    ctx = mp.get_context("fork")
    server = ModelServer(args.latency)
    base_url = server.base_url
    work = Path(tempfile.mkdtemp(prefix="gem-bench-"))
    rows: list[Row] = []
    memory: float | None = None
    per_slot = args.docs_per_slot
    plan: Plan = [
        Case("runner, exec off", 1, per_slot),
        Case("runner, exec off", 8, 8 * per_slot),
        Case("runner, exec off", 32, 32 * per_slot),
        Case("runner, exec off", 128, 128 * per_slot // 2),
        Case("Ray 2 actors, off", 8, 8 * per_slot, workers=2),
        Case("Ray 2 actors, off", 32, 32 * per_slot, workers=2),
        Case("Ray 2 actors, off", 128, 128 * per_slot // 2, workers=2),
        Case("aiohttp, off", 8, 8 * per_slot, http_client="aiohttp"),
        Case("aiohttp, off", 32, 32 * per_slot, http_client="aiohttp"),
        Case("aiohttp, off", 128, 128 * per_slot // 2, http_client="aiohttp"),
        Case("aiohttp 2 actors", 32, 32 * per_slot, workers=2, http_client="aiohttp"),
        Case("bare graph", 32, 32 * per_slot),
    ]
    if sandbox_available():
        plan.append(Case("runner, exec on", 32, 16 * per_slot, execute=True))
        plan.append(Case("Ray 2 actors, on", 32, 16 * per_slot, execute=True, workers=2))
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
        total_requests = server.stop()
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
        "store; in Ray rows only this process, the driver: see --only ray for the actors); "
        "the server's CPU is not included."
    )
    print(
        "Ray 2 actors: gem-graph run --workers 2, a local Ray with two actors sharing the "
        "concurrency, this process owning the store; wall time includes Ray's start-up."
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


# ---- CPU per document against bare ChatOpenAI calls ------------------------------------------

CPU_TARGETS: dict[bool, float] = {False: 1.3, True: 2.0}
"""Highest CPU per document, as a multiple of the bare calls', by execution off/on."""
CPU_CONCURRENCY = 8


def children_cpu() -> float:
    """CPU seconds of the children this process has reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


ProcessTable = dict[int, tuple[int, float]]


def process_table() -> ProcessTable:
    """pid → (parent pid, CPU seconds of the process plus the children it reaped), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    table: ProcessTable = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        # field 4 is the parent's pid; 14–17: utime, stime, cutime, cstime in clock ticks
        table[int(name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / tick)
    return table


def child_pids(table: ProcessTable) -> set[int]:
    """This process's children."""
    me = os.getpid()
    return {pid for pid, (parent, _) in table.items() if parent == me}


def tree_cpu(table: ProcessTable, roots: set[int]) -> float:
    """CPU seconds of the live processes `roots`, their live descendants, and every process
    one of them reaped."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, list(roots)
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


@dataclass
class SandboxCPU:
    """CPU of the sandboxes that runs started, counted as each one closes."""

    seconds: float = 0.0
    """Every process of theirs."""
    reported: float = 0.0
    """What they reported themselves (`Sandbox.reaped_cpu_s`)."""
    overhead: float = 0.0
    """CPU this process spent counting (to take off the client's)."""


@contextlib.contextmanager
def metered_sandboxes() -> Iterator[SandboxCPU]:
    """Make the sandboxes that `run_corpus` starts count their CPU just before they close.

    `run_corpus` creates its own `Sandbox` (it takes none) from `gem_graph.sandbox` when it
    runs, so a subclass put there is the one it starts. The sandbox's processes are mostly
    not ours to reap: episodes are reaped by the database templates they fork from, and
    templates by the fork server, which `aclose()` kills together with them, so
    RUSAGE_CHILDREN after the run misses the templates and their episodes. And
    `Sandbox.reaped_cpu_s` counts the episodes and the templates but not the fork server's
    own start-up (it reports its CPU only when it reaps a child). So the sandbox, before it
    shuts down, sums from /proc the CPU of every process it started that is still alive with
    the children each one reaped (fork server → templates → episodes), and adds what this
    process reaped meanwhile (workers started without the fork server).
    """
    import gem_graph.sandbox as package
    from gem_graph.sandbox import Sandbox

    meter = SandboxCPU()

    class MeteredSandbox(Sandbox):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            started = time.process_time()
            super().__init__(*args, **kwargs)
            self._bench_before = child_pids(process_table()), children_cpu()
            self._bench_counted = False
            meter.overhead += time.process_time() - started

        async def aclose(self) -> None:
            if not self._bench_counted:
                self._bench_counted = True
                started = time.process_time()
                table = process_table()
                children, reaped = self._bench_before
                live = child_pids(table) - children
                meter.seconds += tree_cpu(table, live) + children_cpu() - reaped
                meter.reported += self.reaped_cpu_s
                meter.overhead += time.process_time() - started
            await super().aclose()

    package.Sandbox = MeteredSandbox  # type: ignore[misc]
    try:
        yield meter
    finally:
        package.Sandbox = Sandbox  # type: ignore[misc]


async def replay_bare(base_url: str, requests: list[dict[str, Any]], concurrency: int) -> float:
    """Send `requests` again as bare `ChatOpenAI` calls; returns this process's CPU seconds.

    Each call sends the recorded messages and `response_format` (the same request body the
    stage sent) through the project's `ChatOpenAI` and gets an `AIMessage` back; nothing
    else (no graph, validation, parsing or store). `concurrency` calls are in flight, as in
    a run with that many documents in flight.
    """
    gc.collect()  # not to charge an earlier run's garbage to this one
    started = time.process_time()
    llm = make_chat_model(settings_for(base_url, execute=False).model)
    pending = iter(requests)

    async def caller() -> None:
        for request in pending:
            response_format = request["response_format"]
            await llm.ainvoke(request["messages"], extra_body={"response_format": response_format})

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    await aclose_chat_model(llm)
    return time.process_time() - started


@dataclass
class CpuRow:
    """The CPU table's line for execution off or on: every round, in ms per document."""

    execute: bool
    client: list[float] = field(default_factory=list)
    sandbox: list[float] = field(default_factory=list)
    reported: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)

    @property
    def total(self) -> list[float]:
        return [c + s for c, s in zip(self.client, self.sandbox, strict=True)]

    @property
    def ratios(self) -> list[float]:
        return [t / b for t, b in zip(self.total, self.bare, strict=True)]


async def measure_cpu(
    server: ModelServer, work: Path, n: int, rounds: int, modes: list[bool]
) -> list[CpuRow]:
    """CPU per document of runs of `n` documents and of their calls replayed bare.

    A warm-up run per mode records the requests the documents send; every round then runs
    each mode again through `run_corpus` and replays the recorded requests bare, pipeline
    first in even rounds and bare first in odd ones, so that a drift of the machine does
    not always favour the same side.
    """
    corpus = write_corpus(work, n)
    recorded: dict[bool, list[dict[str, Any]]] = {}
    rows = {execute: CpuRow(execute) for execute in modes}

    async def pipeline(execute: bool, run_dir: Path) -> tuple[float, SandboxCPU]:
        gc.collect()
        with metered_sandboxes() as sandbox:
            started = time.process_time()
            _, kept, processed = await one_run(
                server.base_url, corpus, run_dir, concurrency=CPU_CONCURRENCY, execute=execute
            )
            client = time.process_time() - started - sandbox.overhead
        if kept != n or processed != n:
            raise RuntimeError(f"the run kept {kept} of {n} documents: its CPU is not comparable")
        return client, sandbox

    for execute in modes:
        await pipeline(execute, work / f"cpu-warm-{execute}")
        recorded[execute] = server.take_requests()
        if len(recorded[execute]) != n * calls_per_document(execute):
            raise RuntimeError(
                f"{len(recorded[execute])} model calls for {n} documents, expected "
                f"{calls_per_document(execute)} each"
            )
        await replay_bare(server.base_url, recorded[execute], CPU_CONCURRENCY)
        server.take_requests()  # the replay's
    for round_ in range(rounds):
        for execute in modes:
            row = rows[execute]
            run_dir = work / f"cpu-{round_}-{execute}"
            if round_ % 2:
                bare = await replay_bare(server.base_url, recorded[execute], CPU_CONCURRENCY)
                client, sandbox = await pipeline(execute, run_dir)
            else:
                client, sandbox = await pipeline(execute, run_dir)
                bare = await replay_bare(server.base_url, recorded[execute], CPU_CONCURRENCY)
            server.take_requests()  # forget them: the server keeps every request otherwise
            row.client.append(1000 * client / n)
            row.sandbox.append(1000 * sandbox.seconds / n)
            row.reported.append(1000 * sandbox.reported / n)
            row.bare.append(1000 * bare / n)
            print(
                f"  round {round_ + 1}, execution {'on' if execute else 'off':3}: "
                f"{row.total[-1]:.1f} ms/doc, bare {row.bare[-1]:.1f} ms/doc, "
                f"ratio {row.ratios[-1]:.2f}",
                flush=True,
            )
    return list(rows.values())


def cpu_table(args: argparse.Namespace) -> None:
    """CPU per document of every process against the same documents' bare ChatOpenAI calls."""
    if args.cpu_docs < 1 or args.rounds < 1:
        raise SystemExit("--cpu-docs and --rounds must be at least 1")
    modes = [False, True] if sandbox_available() else [False]
    server = ModelServer(args.cpu_latency)
    work = Path(tempfile.mkdtemp(prefix="gem-bench-cpu-"))
    try:
        rows = asyncio.run(measure_cpu(server, work, args.cpu_docs, args.rounds, modes))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"CPU per document against bare ChatOpenAI calls: {args.cpu_docs} documents per run, "
        f"concurrency {CPU_CONCURRENCY}, {args.cpu_latency * 1000:.0f} ms per model call, "
        f"median of {args.rounds} round{'s' if args.rounds != 1 else ''}"
    )
    print(
        f"{'execution':9}  {'CPU ms/doc (all processes)':>26}  {'bare ChatOpenAI ms/doc':>22}  "
        f"{'ratio':>6}  {'range':>11}  {'target':>6}  met"
    )
    for row in rows:
        ratio = statistics.median(row.ratios)
        target = CPU_TARGETS[row.execute]
        spread = f"{min(row.ratios):.2f}–{max(row.ratios):.2f}x"
        print(
            f"{'on' if row.execute else 'off':9}  {statistics.median(row.total):26.1f}  "
            f"{statistics.median(row.bare):22.1f}  {ratio:5.2f}x  {spread:>11}  "
            f"{'≤' + f'{target:.1f}x':>6}  {'yes' if ratio <= target else 'no'}"
        )
    for row in rows:
        if row.execute:
            client, sandbox = statistics.median(row.client), statistics.median(row.sandbox)
            print(
                f"execution on: client {client:.1f} ms/doc + sandbox {sandbox:.1f} ms/doc "
                f"({100 * sandbox / (client + sandbox):.0f}% in the sandbox; the sandbox's own "
                f"count, Sandbox.reaped_cpu_s, has {statistics.median(row.reported):.1f} of it)"
            )
    if len(rows) == 1:
        print("execution on: skipped, the sandbox's standard tier is unavailable here")
    print(
        "ratio: (client + sandbox CPU) / bare CPU per document, within each round; range: "
        "lowest–highest round. client: this process's CPU time over the run_corpus call "
        "(graph, LangChain, OpenAI client, runner, store, sandbox client; start-up included). "
        "sandbox: its fork server, templates and episodes with their tool processes, start-up "
        "included. bare: the same requests sent with ChatOpenAI.ainvoke. The server's CPU is "
        "in neither."
    )


# ---- the Ray engine beside the local engine ---------------------------------------------------

RAY_CONCURRENCY = (8, 32)


def zombie(pid: int) -> bool:
    """True for a process that has exited and waits to be reaped (or is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def tree_processes(skip: set[int]) -> dict[int, float]:
    """pid → CPU seconds (with the children it reaped) of every running descendant of this
    process, leaving out the subtrees rooted at `skip` (the model server) and processes
    that have exited (a killed actor, until its raylet reaps it)."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, float] = {}
    todo = list(child_pids(table) - skip)
    while todo:
        pid = todo.pop()
        if not zombie(pid):
            found[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return found


def wait_for_actors_to_exit(skip: set[int], timeout: float = 15.0) -> None:
    """Wait until the run's killed actor processes are gone, so that the next snapshot does
    not count their CPU a second time (the actors report it themselves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = []
        for pid in tree_processes(skip):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        if not any(name.startswith(b"ray::DocumentActor") for name in names):
            return
        time.sleep(0.1)
    raise RuntimeError("the run's Ray actors did not exit")


def ray_processes_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU Ray's own processes used between two `tree_processes` snapshots: the growth of
    those alive at both (GCS, raylet, agents, idle workers) plus all of those started in
    between and still alive (new workers). The actors are gone by then (killed at the end of
    the run, see `wait_for_actors_to_exit`; the raylet does not add its reaped workers' CPU
    to its own), so they are counted by themselves, from the actors' own report."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass
class RayRow:
    """One (engine, actors, concurrency) line of the Ray table, every repetition."""

    label: str
    actors: int
    concurrency: int
    documents: int
    seconds: list[float] = field(default_factory=list)
    driver_ms: list[float] = field(default_factory=list)
    actors_ms: list[float] = field(default_factory=list)
    ray_ms: list[float] = field(default_factory=list)

    @property
    def total_ms(self) -> list[float]:
        return [
            d + a + r for d, a, r in zip(self.driver_ms, self.actors_ms, self.ray_ms, strict=True)
        ]


async def ray_run(base_url: str, corpus: Path, run_dir: Path, row: RayRow, skip: set[int]) -> None:
    """One run of `row` on the Ray this process joined (or locally), its CPU split."""
    from gem_graph.run.store import RunStore

    settings = settings_for(base_url, execute=False, concurrency=row.concurrency)
    if row.actors:
        settings = settings.updated(run={"engine": "ray"})
    gc.collect()
    tree = tree_processes(skip)
    cpu = time.process_time()
    seconds, kept, processed = 0.0, 0, 0
    started = time.perf_counter()
    llm = make_chat_model(settings.model)
    try:
        result = await run_corpus(
            read_corpus(corpus),
            llm=llm,
            settings=settings,
            options=RunOptions(run_dir=run_dir, progress=False),
        )
    finally:
        await aclose_chat_model(llm)
    seconds, kept, processed = time.perf_counter() - started, result.kept, result.processed
    driver = time.process_time() - cpu
    if kept != row.documents or processed != row.documents:
        raise RuntimeError(f"{row.label}: kept {kept} of {row.documents} documents")
    actors = 0.0
    if row.actors:
        with RunStore(run_dir) as store:
            engine = store.get_meta("engine") or {}
        actors = float(engine.get("actor_cpu_seconds", 0.0))
    others = 0.0
    if row.actors:
        wait_for_actors_to_exit(skip)
        others = ray_processes_cpu(tree, tree_processes(skip))
    n = row.documents
    row.seconds.append(seconds)
    row.driver_ms.append(1000 * driver / n)
    row.actors_ms.append(1000 * actors / n)
    row.ray_ms.append(1000 * others / n)
    print(
        f"  {row.label:16} c={row.concurrency:<3} {n} docs in {seconds:.1f} s "
        f"({n / seconds:.1f}/s), {row.total_ms[-1]:.0f} ms CPU/doc",
        flush=True,
    )


def ray_table(args: argparse.Namespace) -> None:
    """Documents/s and CPU per document: local engine, Ray with 1 actor, Ray with 2 actors."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    server = ModelServer(args.latency)
    skip = {server._process.pid}
    work = Path(tempfile.mkdtemp(prefix="gem-bench-ray-"))
    rows: list[RayRow] = []
    ray_start: dict[int, float] = {}
    try:
        for actors in (0, 1, 2):
            label = f"Ray, {actors} actor{'s' if actors > 1 else ''}" if actors else "local"
            if actors:
                started = time.perf_counter()
                ray.init(
                    address="local",
                    num_cpus=actors,
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                )
                ray_start[actors] = time.perf_counter() - started
            try:
                for concurrency in args.ray_concurrency:
                    n = concurrency * args.docs_per_slot
                    row = RayRow(label, actors, concurrency, n)
                    rows.append(row)
                    corpus = write_corpus(work, n)
                    for round_ in range(args.repeat):
                        run_dir = work / f"ray-{actors}-{concurrency}-{round_}"
                        asyncio.run(ray_run(server.base_url, corpus, run_dir, row, skip))
            finally:
                if actors:
                    ray.shutdown()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"Local engine and Ray engine, execution off, {args.latency * 1000:.0f} ms per model "
        f"call, {args.docs_per_slot} documents per slot, median of {args.repeat} "
        f"({os.cpu_count()} CPUs)"
    )
    print(
        f"{'engine':12} {'conc.':>5} {'docs':>5} {'wall s':>7} {'docs/s':>7} "
        f"{'driver':>7} {'actors':>7} {'Ray':>6} {'total':>6} {'overhead':>9}   (CPU ms/doc)"
    )
    local = {r.concurrency: statistics.median(r.total_ms) for r in rows if not r.actors}
    for row in rows:
        seconds = statistics.median(row.seconds)
        total = statistics.median(row.total_ms)
        overhead = f"{total - local[row.concurrency]:+9.0f}" if row.actors else f"{'–':>9}"
        print(
            f"{row.label:12} {row.concurrency:5} {row.documents:5} {seconds:7.2f} "
            f"{row.documents / seconds:7.1f} {statistics.median(row.driver_ms):7.0f} "
            f"{statistics.median(row.actors_ms):7.0f} {statistics.median(row.ray_ms):6.0f} "
            f"{total:6.0f} {overhead}"
        )
    starts = ", ".join(f"{a} CPU(s) {s:.1f} s" for a, s in ray_start.items())
    print(f"Ray start-up (ray.init, not in the rows): {starts}")
    print(
        "driver: this process (corpus, store, progress, routing); actors: the actors from their "
        "creation (graph set-up included); Ray: GCS, raylet, agents and worker start over the "
        "run; overhead: "
        "total minus the local engine's at the same concurrency. The server's CPU is in none."
    )


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
    parser.add_argument(
        "--cpu-docs",
        type=int,
        default=30,
        help="documents per run of the CPU table (runner against bare ChatOpenAI calls)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the CPU table; it shows the median"
    )
    parser.add_argument(
        "--cpu-latency",
        type=float,
        default=0.05,
        help="seconds per model call for the CPU table (its own server)",
    )
    parser.add_argument(
        "--only",
        choices=("throughput", "cpu", "ray"),
        help="print only the throughput table (with memory), the CPU table or the Ray table",
    )
    parser.add_argument(
        "--ray-concurrency",
        type=int,
        nargs="+",
        default=list(RAY_CONCURRENCY),
        help="concurrencies of the Ray table",
    )
    args = parser.parse_args()
    if args.only in (None, "throughput"):
        throughput_tables(args)
    if args.only in (None, "cpu"):
        if args.only is None:
            print()
        cpu_table(args)
    if args.only in (None, "ray"):
        if args.only is None:
            print()
        ray_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
