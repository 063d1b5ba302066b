"""Sandbox benchmark: verification latency and throughput of trajectories, per tier.

A trajectory here is what the verifier does: open an episode on a fresh database, load the
tools, make N calls, take the final snapshot (validated), close. Compared with a baseline
measured in the same run: a fresh hardened `python -I -S` worker started per trajectory, with
no pre-start. Usage: `python benchmarks/sandbox.py [--latency-runs 30] [--throughput-runs 100]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import time

from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import SandboxSettings

TOOLS = """
from gem_graph.runtime import ToolError, new_id


def add_order(db, customer: str, amount: int):
    order_id = new_id("order")
    db.execute("INSERT INTO orders (id, customer, amount) VALUES (?, ?, ?)",
               (order_id, customer, amount))
    return {"order_id": order_id}


def get_order(db, order_id: str):
    row = db.execute("SELECT customer, amount FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise ToolError("not found")
    return {"customer": row[0], "amount": row[1]}
"""


def make_db() -> bytes:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT, amount INTEGER)")
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(f"seed_{i}", f"c{i}", i) for i in range(1000)]
    )
    con.commit()
    return con.serialize()


async def trajectory(sandbox: Sandbox, db: bytes, calls: int) -> float:
    start = time.perf_counter()
    episode = await sandbox.open_episode(TOOLS, db, seed=1)
    try:
        assert (await episode.load())["ok"]
        for i in range(calls):
            if i % 2 == 0:
                r = await episode.call("add_order", {"customer": "ann", "amount": i})
            else:
                r = await episode.call("get_order", {"order_id": f"seed_{i}"})
            assert r["status"] == "ok", r
        await episode.snapshot()
    finally:
        await episode.close()
    return (time.perf_counter() - start) * 1000.0


async def measure(settings: SandboxSettings, calls: int, runs: int, tput_runs: int,
                  concurrency: int) -> dict[str, float]:  # fmt: skip
    db = make_db()
    async with Sandbox(settings) as sandbox:
        await trajectory(sandbox, db, calls)  # warm-up
        latencies = []
        for _ in range(runs):
            latencies.append(await trajectory(sandbox, db, calls))
            await asyncio.sleep(0.002)  # a verifier does other work between trajectories
        queue = asyncio.Queue[int]()
        for i in range(tput_runs):
            queue.put_nowait(i)

        async def lane() -> None:
            while not queue.empty():
                queue.get_nowait()
                await trajectory(sandbox, db, calls)

        start = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "median": statistics.median(latencies),
        "p90": latencies[int(0.9 * (len(latencies) - 1))],
        "tps": tput_runs / elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--throughput-runs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    info = probe()
    tiers = [t for t in ("strict", "standard") if info["tiers"][t] is True]
    print(f"cores={os.cpu_count()} landlock_abi={info['landlock_abi']} "
          f"seccomp={info['seccomp']} bwrap={info['bwrap']} tiers={tiers}")  # fmt: skip
    header = (
        f"{'tier':9} {'calls':>5} {'mode':22} {'median ms':>10} {'p90 ms':>8} "
        f"{'traj/s':>8} {'latency x':>10} {'traj/s x':>9}"
    )
    print(header)
    print("-" * len(header))
    for tier in tiers:
        for calls in (1, 20):
            base_settings = SandboxSettings(tier=tier, fork_server=False, prestart=0)
            fast_settings = SandboxSettings(tier=tier, fork_server=True, prestart=args.concurrency)
            base = await measure(base_settings, calls, args.latency_runs,
                                 args.throughput_runs // 2, args.concurrency)  # fmt: skip
            fast = await measure(fast_settings, calls, args.latency_runs,
                                 args.throughput_runs, args.concurrency)  # fmt: skip
            for name, row in (("fresh -I -S (baseline)", base), ("zygote + prestart", fast)):
                print(
                    f"{tier:9} {calls:>5} {name:22} {row['median']:>10.2f} {row['p90']:>8.2f} "
                    f"{row['tps']:>8.1f} {base['median'] / row['median']:>9.1f}x "
                    f"{row['tps'] / base['tps']:>8.1f}x"
                )


if __name__ == "__main__":
    asyncio.run(main())
