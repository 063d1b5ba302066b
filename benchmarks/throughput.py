"""Runner throughput against an OpenAI-compatible loopback server with a fixed latency per call.

    python benchmarks/throughput.py [--latency 0.2] [--quick]

The server runs in its own process (so its threads do not compete with the runner for the
GIL) and answers every stage of a small procedure with scripted JSON after `--latency`
seconds. For each concurrency the runner processes enough documents to run ~5 s, and the
table compares documents/s with the ideal bound concurrency / (calls per document ×
latency). Execution is off for the main table (the runner's own overhead); when the
sandbox is available one more row runs with execution on (implement + sandbox replay of
the retail reference environment). Peak memory per 1,000 documents in flight comes from
tracemalloc over a run with 1,000 documents in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gem_graph.corpus import read_corpus  # noqa: E402
from gem_graph.environment import load_environment  # noqa: E402
from gem_graph.llm import make_chat_model  # noqa: E402
from gem_graph.resources import data_dir  # noqa: E402
from gem_graph.runner import RunOptions, run_corpus  # noqa: E402
from gem_graph.settings import ModelSettings, PipelineSettings, Settings  # noqa: E402
from gem_graph.testing.openai_server import (  # noqa: E402
    Answer,
    Fault,
    LoopbackOpenAIServer,
    requested_schema_name,
    structured_answer,
)

TEXT = """Summit Outfitters help centre: cancelling or returning an order.
Sign in with the email and zip code on your account. Open your orders to see each order's
status. Pending orders can be cancelled (choose a reason) or get a new shipping address.
Delivered orders can be returned within 30 days, at most 3 units per return.
"""

FILTER = {
    "relevant": True,
    "reason": "A web-shop support procedure.",
    "summary": "Cancel or return an order.",
    "platform": "computer",
    "domain": "e_commerce",
    "category": "order_management",
}
JUDGE = {
    "r1_tool_call_hallucination": {"passed": True, "reason": "Values come from context."},
    "r2_capability_hallucination": {"passed": True, "reason": "Tools used as defined."},
    "r3_context_hallucination": {"passed": True, "reason": "Consistent."},
}


def _payloads() -> dict[str, dict[str, Any]]:
    """Stage answers built from the retail reference environment and its first gold dialogue."""
    retail = data_dir("environments") / "retail"
    env = load_environment(retail)
    gold = json.loads((retail / "trajectories.jsonl").read_text().splitlines()[0])
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "parameters_json": json.dumps(t["function"]["parameters"]),
            "read_only": t["function"]["name"] in env.manifest.read_only_tools,
        }
        for t in env.tools
    ]
    calls = [
        ("authenticate_customer", {"email": "maya.lopez@example.com", "zip_code": "94110"}),
        ("get_customer_orders", {"customer_id": "cus_1001"}),
        ("get_order_details", {"customer_id": "cus_1001", "order_id": "ord_5001"}),
    ]
    extract = {
        "workflows": [
            {
                "name": "cancel_order",
                "description": "Authenticate, find the order, cancel it.",
                "steps": ["authenticate", "list orders", "inspect the order", "cancel it"],
                "graph": "(authenticate_customer)->(get_customer_orders)->(get_order_details)"
                "->(cancel_order)",
                "constraints": ["authenticate first", "only pending orders can be cancelled"],
                "example_calls": [{"tool": n, "arguments_json": json.dumps(a)} for n, a in calls],
            },
            {
                "name": "change_or_return",
                "description": "Change a pending order or return items.",
                "steps": [
                    "authenticate",
                    "search_products for a replacement",
                    "update_shipping_address of a pending order",
                    "create_return for a delivered order",
                    "get_return_status",
                ],
                "graph": "(authenticate_customer)->(search_products)->(update_shipping_address | "
                "create_return)->(get_return_status)",
                "constraints": ["returns within 30 days of delivery", "at most 3 units per return"],
                "example_calls": [
                    {"tool": "search_products", "arguments_json": json.dumps({"query": "socks"})}
                ],
            },
        ],
        "tools": tools,
        "rules": ["Authenticate before account actions.", "Only pending orders can be cancelled."],
    }
    implement = {
        "schema_sql": env.schema_sql,
        "seed_json": json.dumps(env.seed),
        "tools_py": env.tools_py,
        "policy": env.policy,
    }
    trajectory = {
        "messages": [
            {
                "role": m["role"],
                "content": m.get("content"),
                "tool_calls": m.get("tool_calls"),
                "tool_call_id": m.get("tool_call_id"),
            }
            for m in gold["messages"]
        ],
        "scenario": {"now": gold["scenario"]["now"], "rows_json": "{}"},
        "patterns": ["clarification", "rule_awareness", "multi_hop"],
        "new_tools": [],
    }
    return {
        "FilterOutput": FILTER,
        "ExtractOutput": extract,
        "ImplementOutput": implement,
        "TrajectoryOutput": trajectory,
        "JudgeOutput": JUDGE,
    }


PAYLOADS: dict[str, dict[str, Any]] = {}


def respond(request: dict[str, Any]) -> Answer | Fault:
    if not PAYLOADS:
        PAYLOADS.update(_payloads())
    name = requested_schema_name(request) or "FilterOutput"
    return structured_answer(request, PAYLOADS[name])


def _serve(latency: float, pipe: Any) -> None:
    with LoopbackOpenAIServer(respond, latency_s=latency) as server:
        server._server.request_queue_size = 2048  # noqa: SLF001 - benchmark only
        pipe.send(server.base_url)
        pipe.recv()  # wait until told to stop
        pipe.send(len(server.requests))


def settings_for(base_url: str, *, execute: bool) -> Settings:
    return Settings(
        model=ModelSettings(name="bench", base_url=base_url, timeout_s=60, retry_initial_s=0.05),
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
    base_url: str, corpus: Path, run_dir: Path, *, concurrency: int, execute: bool
) -> tuple[float, int, int]:
    settings = settings_for(base_url, execute=execute)
    options = RunOptions(run_dir=run_dir, concurrency=concurrency, progress=False)
    started = time.perf_counter()
    result = await run_corpus(
        read_corpus(corpus), llm=make_chat_model(settings.model), settings=settings, options=options
    )
    return time.perf_counter() - started, result.kept, result.processed


def sandbox_available() -> bool:
    from gem_graph.sandbox import probe

    return probe()["tiers"].get("standard") is True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=5.0, help="target length of each row")
    parser.add_argument("--quick", action="store_true", help="shorter rows, no memory run")
    args = parser.parse_args()
    target = 2.0 if args.quick else args.seconds

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(args.latency, child), daemon=True)
    server.start()
    base_url = parent.recv()
    work = Path(tempfile.mkdtemp(prefix="gem-bench-"))
    rows: list[tuple[str, int, int, int, float, float, float]] = []
    try:
        plan: list[tuple[str, int, bool]] = [(f"exec off", c, False) for c in (1, 8, 32, 128)]
        if sandbox_available():
            plan.append(("exec on (sandbox)", 32, True))
        for label, concurrency, execute in plan:
            calls = calls_per_document(execute)
            ideal = concurrency / (calls * args.latency)
            n = max(concurrency, round(ideal * target))
            corpus = write_corpus(work, n)
            run_dir = work / f"run-{label.split()[1]}-{concurrency}"
            seconds, kept, processed = asyncio.run(
                one_run(base_url, corpus, run_dir, concurrency=concurrency, execute=execute)
            )
            rate = processed / seconds
            rows.append((label, concurrency, n, kept, seconds, rate, rate / ideal))
            print(
                f"  {label:18} c={concurrency:<4} {n:5} docs  {kept:5} kept  {seconds:6.2f} s  "
                f"{rate:7.1f} docs/s  ideal {ideal:7.1f}  ratio {rate / ideal:4.2f}",
                flush=True,
            )
            shutil.rmtree(run_dir, ignore_errors=True)

        memory = None
        if not args.quick:
            corpus = write_corpus(work, 1000)
            tracemalloc.start()
            baseline = tracemalloc.get_traced_memory()[0]
            asyncio.run(
                one_run(base_url, corpus, work / "run-mem", concurrency=1000, execute=False)
            )
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            memory = (peak - baseline) / 1e6
    finally:
        parent.send("stop")
        total_requests = parent.recv() if parent.poll(5) else None
        server.join(timeout=5)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Runner throughput, {args.latency * 1000:.0f} ms per model call (loopback server)")
    print(f"{'mode':18} {'conc.':>5} {'docs':>6} {'kept':>6} {'wall s':>7} {'docs/s':>8} "
          f"{'ideal/s':>8} {'ratio':>6}")
    for label, concurrency, n, kept, seconds, rate, ratio in rows:
        calls = 5 if "on" in label else 4
        ideal = concurrency / (calls * args.latency)
        print(f"{label:18} {concurrency:5} {n:6} {kept:6} {seconds:7.2f} {rate:8.1f} "
              f"{ideal:8.1f} {ratio:6.2f}")
    print("ideal = concurrency / (calls per document × latency); calls per document: 4 with "
          "execution off (filter, extract, ground, judge), 5 with it on (+ implement)")
    if memory is not None:
        print(f"peak traced memory with 1,000 documents in flight: {memory:.0f} MB "
              f"(≈ {memory:.0f} MB per 1,000 documents in flight)")
    if total_requests is not None:
        print(f"model requests served: {total_requests}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
