"""Cost of the two modes on the same corpus: the multi-stage pipeline vs the one-call synthesizer.

Both modes run the real graphs, checks, sandbox and verifier against a scripted model that
charges every call the same simulated latency: a fixed time per call plus a time per output
token. The scripted answers are the reference environments (retail, clinic) and their gold
dialogues, so both modes produce the same kept trajectories and differ only in how many
model calls and tokens it took. Every `--repair-every`-th document gets a first dialogue
with a wrong tool output in both modes, so each mode pays for one repair round there.

Usage: `python benchmarks/synthesizer_cost.py [--copies 3] [--call-ms 200] [--token-ms 0.2]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from gem_graph import build_gem_graph
from gem_graph.compare import compare_runs, summarize_run
from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import ModelSettings, PipelineSettings, Settings
from gem_graph.synthesizer import build_synthesizer_graph
from gem_graph.testing.reference_replies import (
    FILTER_OK,
    JUDGE_OK,
    extract_reply,
    gold_record,
    implement_reply,
    reference_environment,
    synthesizer_reply,
    trajectory_reply,
)
from gem_graph.testing.scripted import Reply, ScriptedChatModel, ScriptKey

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    "retail": (
        "Summit Outfitters help centre: cancelling or returning an order. Sign in with the "
        "email and zip code on your account. Open your orders to see each order's status. "
        "Pending orders can be cancelled (choose a reason) or get a new shipping address. "
        "Delivered orders can be returned within 30 days, at most 3 units per return."
    ),
    "clinic": (
        "Booking at Lakeside Family Clinic: verify yourself with your full name and date of "
        "birth, pick a doctor, and choose an open slot. Slots must be at least 24 hours ahead "
        "and you may hold one appointment per day. Cancel or reschedule from your "
        "appointments page; late cancellations are not possible online."
    ),
}


def diverging(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its first successful tool output altered (an invented extra field)."""
    record = json.loads(json.dumps(record))
    for message in record["messages"]:
        if message["role"] != "tool":
            continue
        value = json.loads(message["content"])
        if isinstance(value, dict) and "error" not in value:
            message["content"] = json.dumps({**value, "loyalty_points": 120})
            return record
    raise ValueError("no successful tool output to alter")


def script(repair_every: int) -> Any:
    """A responder keyed by stage and the document's environment (`<env>-<n>`)."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for name in TEXTS:
        env = reference_environment(name)
        ground, refined = gold_record(name, 0), gold_record(name, 1)
        table[("good", name)] = {
            "filter": FILTER_OK,
            "extract": extract_reply(env, ground, TEXTS[name]),
            "implement": implement_reply(env),
            "ground": trajectory_reply(ground),
            "refine": trajectory_reply(refined),
            "judge": JUDGE_OK,
            "synthesizer": synthesizer_reply(env, ground),
        }
        table[("bad", name)] = {
            "ground": trajectory_reply(diverging(ground)),
            "synthesizer": synthesizer_reply(env, diverging(ground)),
        }

    def respond(key: ScriptKey, _messages: list[BaseMessage]) -> Reply:
        env, number = key.doc_id.rsplit("-", 1)
        repair = repair_every > 0 and int(number) % repair_every == 0
        if repair and key.attempt == 1 and key.stage in ("ground", "synthesizer"):
            return table[("bad", env)][key.stage]
        reply: Reply = table[("good", env)][key.stage]
        return reply

    return respond


class SlowScriptedModel(ScriptedChatModel):
    """The scripted model, charging a simulated latency per call and per output token."""

    call_s: float = 0.2
    token_s: float = 0.0002

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = await super()._agenerate(messages, stop, run_manager, **kwargs)
        usage = getattr(result.generations[0].message, "usage_metadata", None) or {}
        await asyncio.sleep(self.call_s + self.token_s * int(usage.get("output_tokens", 0)))
        return result


async def run_mode(
    mode: str, docs: list[dict[str, Any]], args: argparse.Namespace, execute: bool
) -> dict[str, Any]:
    model = SlowScriptedModel(
        responder=script(args.repair_every),
        call_s=args.call_ms / 1000,
        token_s=args.token_ms / 1000,
        model_name="scripted-teacher",
    )
    judge = mode != "synthesizer (no judge)"
    settings = Settings(
        model=ModelSettings(retry_initial_s=0.01),
        pipeline=PipelineSettings(execute=execute, judge=judge),
    )
    sandbox = Sandbox(settings.sandbox) if execute else None
    try:
        if mode == "pipeline":
            graph: Any = build_gem_graph(llm=model, settings=settings, sandbox=sandbox)
        else:
            graph = build_synthesizer_graph(llm=model, settings=settings, sandbox=sandbox)
        started = time.perf_counter()
        outputs = await graph.abatch(
            [{"document": d} for d in docs], config={"max_concurrency": args.concurrency}
        )
        wall = time.perf_counter() - started
    finally:
        if sandbox is not None:
            await sandbox.aclose()
    merged: dict[str, list[Any]] = {"records": [], "rejects": [], "usage": []}
    for out in outputs:
        for key in merged:
            merged[key].extend(out.get(key, []))
    return summarize_run(
        records=merged["records"],
        rejects=merged["rejects"],
        usage=merged["usage"],
        documents=len(docs),
        wall_seconds=wall,
        stages=None if judge else ["intake", "synthesizer"],
        name=mode,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of each reference text")
    parser.add_argument("--call-ms", type=float, default=200.0, help="latency per model call")
    parser.add_argument("--token-ms", type=float, default=0.2, help="latency per output token")
    parser.add_argument("--repair-every", type=int, default=2, help="0 = no repairs")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    execute = probe()["tiers"].get("standard") is True
    docs = [
        {"id": f"{name}-{n}", "text": text}
        for name, text in TEXTS.items()
        for n in range(1, args.copies + 1)
    ]
    from rich.console import Console

    console = Console(width=max(Console().width, 110))
    repairs = (
        f"every {args.repair_every}th document's first dialogue has a wrong tool output in "
        "both modes (one repair round)"
        if args.repair_every
        else "no repairs: every first draft passes"
    )
    console.print(
        "[bold]Assumptions[/]\n"
        f"- corpus: {len(docs)} documents ({args.copies} copies each of the retail and clinic "
        "texts); both modes keep the same gold dialogue per document\n"
        f"- simulated model latency: {args.call_ms:g} ms per call + {args.token_ms:g} ms per "
        "output token (scripted model, ~4 characters per token), identical for both modes\n"
        f"- {repairs}\n"
        f"- concurrency {args.concurrency}; execution "
        + ("on (real sandbox, standard tier)" if execute else "OFF (standard tier unavailable)")
        + "\n- pipeline: filter, extract, implement, ground, refine, judge; synthesizer: one "
        "generation (+ judge in the first variant); wall time includes sandbox verification"
    )
    pipeline = await run_mode("pipeline", docs, args, execute)
    synth = await run_mode("synthesizer", docs, args, execute)
    bare = await run_mode("synthesizer (no judge)", docs, args, execute)
    for other in (synth, bare):
        console.print(compare_runs(pipeline, other).table())
    console.print("[bold]Pipeline ÷ synthesizer, per kept trajectory[/]")
    for other in (synth, bare):
        parts = []
        for key, label in (
            ("calls", "calls"),
            ("tokens", "tokens"),
            ("output_tokens", "output tokens"),
            ("wall_seconds", "wall time"),
        ):
            a, b = pipeline["per_kept"][key], other["per_kept"][key]
            parts.append(f"{label} {a / b:.1f}×" if a and b else f"{label} -")
        console.print(f"- vs {other['name']}: " + ", ".join(parts))


if __name__ == "__main__":
    asyncio.run(main())
