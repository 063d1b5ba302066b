"""Sandbox benchmark: the CPU one verified trajectory costs, per tier and mode.

A trajectory here is what the verifier does: open an episode on a fresh database, load the
tools, make N calls, read the final state (hash and diff), close. CPU is counted in every
process: the client (`process_time`) plus the sandbox's episode processes (monitor and
tool process, reaped by the fork server, or our own children for fresh workers). The
baseline, measured in the same run, executes the same calls in-process on a plain
sqlite3 connection and hashes the final state: what verification would cost with no
isolation at all. Each figure is the median of `--rounds` rounds.
Usage: `python benchmarks/sandbox.py [--rounds 3] [--trajectories 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import statistics
import time
from typing import Any

from gem_graph import runtime
from gem_graph.dbstate import state_diff, state_hash
from gem_graph.sandbox import Sandbox, SandboxError, probe
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


SCHEMA = "CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT, amount INTEGER)"


def seed_rows(rows: int) -> dict[str, list[dict[str, Any]]]:
    return {"orders": [{"id": f"seed_{i}", "customer": f"c{i}", "amount": i} for i in range(rows)]}


def database_size(rows: int) -> int:
    con = sqlite3.connect(":memory:")
    con.execute(SCHEMA)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                    [tuple(r.values()) for r in seed_rows(rows)["orders"]])  # fmt: skip
    con.commit()
    return len(con.serialize())


def call_plan(calls: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("add_order", {"customer": "ann", "amount": i})
        if i % 2 == 0
        else ("get_order", {"order_id": f"seed_{i}"})
        for i in range(calls)
    ]


def in_process(calls: int, rows: int) -> None:
    """The no-isolation baseline: same database, same calls, same final hash and diff."""
    con = sqlite3.connect(":memory:")
    con.execute(SCHEMA)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                    [tuple(r.values()) for r in seed_rows(rows)["orders"]])  # fmt: skip
    con.commit()
    initial = sqlite3.connect(":memory:")
    initial.deserialize(con.serialize())
    namespace: dict[str, Any] = {}
    exec(compile(TOOLS, "tools.py", "exec"), namespace)
    runtime._configure(None, 1)
    for name, arguments in call_plan(calls):
        namespace[name](con, **arguments)
        con.commit()
    state_hash(con)
    state_diff(initial, con)


async def trajectory(sandbox: Sandbox, calls: int, rows: int) -> None:
    database = {"schema_sql": SCHEMA, "seed": seed_rows(rows)}
    episode = await sandbox.open_episode(TOOLS, database, seed=1)  # type: ignore[arg-type]
    try:
        assert (await episode.load())["ok"]
        for name, arguments in call_plan(calls):
            result = await episode.call(name, arguments)
            assert result["status"] == "ok", result
        await episode.state()
    finally:
        await episode.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def sandbox_round(
    settings: SandboxSettings, calls: int, rows: int, n: int
) -> dict[str, float]:
    """CPU ms per trajectory (client, sandbox) and wall ms, over `n` sequential trajectories."""
    async with Sandbox(settings) as sandbox:
        await trajectory(sandbox, calls, rows)  # warm-up
        await asyncio.sleep(0.2)
        client0, children0, reaped0 = time.process_time(), children_cpu(), sandbox.reaped_cpu_s
        start = time.perf_counter()
        for _ in range(n):
            await trajectory(sandbox, calls, rows)
        wall = time.perf_counter() - start
        await asyncio.sleep(0.3)  # let the last exit notices arrive
        client = time.process_time() - client0
        workers = children_cpu() - children0 + sandbox.reaped_cpu_s - reaped0
    return {"client": 1000 * client / n, "sandbox": 1000 * workers / n, "wall": 1000 * wall / n}


def baseline_round(calls: int, rows: int, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        in_process(calls, rows)
    return 1000 * (time.process_time() - start) / n


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trajectories", type=int, default=10)
    parser.add_argument("--fresh", action="store_true", help="also measure fresh workers")
    args = parser.parse_args()
    info = probe()
    tiers = [t for t in ("strict", "standard") if info["tiers"][t] is True]
    print(f"cores={os.cpu_count()} landlock_abi={info['landlock_abi']} "
          f"seccomp={info['seccomp']} bwrap={info['bwrap']} tiers={tiers} "
          f"rounds={args.rounds} trajectories/round={args.trajectories}")  # fmt: skip
    header = (
        f"{'tier':9} {'db KB':>6} {'calls':>5} {'mode':13} {'client ms':>10} {'sandbox ms':>11} "
        f"{'CPU ms':>8} {'x in-process':>13} {'x 52KB':>7}"
    )
    print(header)
    print("-" * len(header))
    axes = [(1000, 1), (1000, 20), (1000, 100), (20_000, 20), (100_000, 20)]
    smallest: dict[tuple[str, str, int], float] = {}
    for rows, calls in axes:
        size = database_size(rows) // 1024
        n = max(2, args.trajectories * 1000 // max(rows, 1000))
        base = statistics.median(baseline_round(calls, rows, n) for _ in range(args.rounds))
        print(f"{'-':9} {size:>6} {calls:>5} {'in-process':13} {base:>10.2f} {0:>11.2f} "
              f"{base:>8.2f} {1:>12.1f}x")  # fmt: skip
        modes = [("fork server", True)] + ([("fresh worker", False)] if args.fresh else [])
        for tier in tiers:
            for mode, fork in modes:
                settings = SandboxSettings(tier=tier, fork_server=fork, prestart=2,
                                           build_timeout_s=120, call_timeout_s=60)  # fmt: skip
                try:
                    row = median_of(
                        [await sandbox_round(settings, calls, rows, n) for _ in range(args.rounds)]
                    )
                except SandboxError as exc:
                    print(f"{tier:9} {size:>6} {calls:>5} {mode:13} failed: {exc}")
                    continue
                cpu = row["client"] + row["sandbox"]
                key = (tier, mode, calls)
                if rows == 1000:
                    smallest[key] = cpu
                growth = cpu / smallest[key] if key in smallest else float("nan")
                print(
                    f"{tier:9} {size:>6} {calls:>5} {mode:13} {row['client']:>10.2f} "
                    f"{row['sandbox']:>11.2f} {cpu:>8.2f} {cpu / base:>12.1f}x {growth:>6.1f}x"
                )


if __name__ == "__main__":
    asyncio.run(main())
