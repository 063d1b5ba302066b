"""Sandbox benchmark: the CPU one verified trajectory costs, by database size and length.

A trajectory here is what the verifier does: open an episode, load the tools, make N
calls, read the final state (hash and diff), close. Episodes on one schema and seed fork
from a template that built the database once; the template's build is reported on its
own ("build ms", once per schema and seed), the rest per trajectory. CPU is counted in
every process: the client (`process_time`) plus the sandbox's (fork server, template,
monitors and tool processes, as they report it). The baseline, measured in the same run,
makes the same calls in-process on a plain sqlite3 connection (inside a transaction that
is rolled back): the tool work alone, with no isolation and no state. Each figure is the
median of `--rounds` rounds. Also printed: the fixed and per-call cost (a line through
the 1- and 100-call rows) and the CPU of starting the CLI.
Usage: `python benchmarks/sandbox.py [--rounds 3] [--trajectories 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gem_graph import runtime
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


ROOT = Path(__file__).resolve().parents[1]


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


def in_process(con: sqlite3.Connection, namespace: dict[str, Any], calls: int) -> None:
    """The baseline: the same calls on a plain connection, rolled back afterwards."""
    runtime._configure(None, 1)
    for name, arguments in call_plan(calls):
        namespace[name](con, **arguments)
    con.rollback()


def database_spec(rows: int) -> dict[str, Any]:
    """The episode's database, named by a key as `Environment.database_key` names it."""
    return {"schema_sql": SCHEMA, "seed": seed_rows(rows), "key": f"bench-{rows}"}


async def trajectory(sandbox: Sandbox, calls: int, database: dict[str, Any]) -> None:
    episode = await sandbox.open_episode(TOOLS, database, seed=1)  # type: ignore[arg-type]
    try:
        assert (await episode.load())["ok"]
        for name, arguments in call_plan(calls):
            result = await episode.call(name, arguments)
            assert result["status"] == "ok", result
        await episode.state()
    finally:
        await episode.close()


async def sandbox_round(
    settings: SandboxSettings, calls: int, rows: int, n: int
) -> dict[str, float]:
    """CPU ms of the first trajectory (template build included), then per trajectory
    (client, sandbox) and trajectories per second, over `n` sequential trajectories."""
    database = database_spec(rows)
    async with Sandbox(settings) as sandbox:
        client0, reaped0 = time.process_time(), sandbox.reaped_cpu_s
        await trajectory(sandbox, calls, database)
        await asyncio.sleep(0.3)  # let the exit notices arrive
        first = time.process_time() - client0 + sandbox.reaped_cpu_s - reaped0
        client0, reaped0 = time.process_time(), sandbox.reaped_cpu_s
        start = time.perf_counter()
        for _ in range(n):
            await trajectory(sandbox, calls, database)
        wall = time.perf_counter() - start
        await asyncio.sleep(0.3)
        client = time.process_time() - client0
        workers = sandbox.reaped_cpu_s - reaped0
    return {
        "first": 1000 * first,
        "client": 1000 * client / n,
        "sandbox": 1000 * workers / n,
        "per_s": n / wall,
    }


def baseline_round(calls: int, rows: int, n: int) -> float:
    con = sqlite3.connect(":memory:")
    con.execute(SCHEMA)
    con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                    [tuple(r.values()) for r in seed_rows(rows)["orders"]])  # fmt: skip
    con.commit()
    namespace: dict[str, Any] = {}
    exec(compile(TOOLS, "tools.py", "exec"), namespace)
    start = time.process_time()
    for _ in range(n):
        in_process(con, namespace, calls)
    return 1000 * (time.process_time() - start) / n


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold_start(rounds: int) -> dict[str, float]:
    """CPU ms of `gem-graph --help` and of `import gem_graph.cli`, as fresh processes."""
    commands = {
        "gem-graph --help": [sys.executable, "-m", "gem_graph.cli", "--help"],
        "import gem_graph.cli": [sys.executable, "-c", "import gem_graph.cli"],
    }
    out = {}
    for label, argv in commands.items():
        samples = []
        for _ in range(rounds):
            before = children_cpu()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
            samples.append(1000 * (children_cpu() - before))
        out[label] = statistics.median(samples)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trajectories", type=int, default=10)
    args = parser.parse_args()
    info = probe()
    tiers = [t for t in ("strict", "standard") if info["tiers"][t] is True]
    print(f"cores={os.cpu_count()} landlock_abi={info['landlock_abi']} "
          f"seccomp={info['seccomp']} bwrap={info['bwrap']} tiers={tiers} "
          f"rounds={args.rounds} trajectories/round={args.trajectories}")  # fmt: skip
    header = (
        f"{'tier':9} {'db KB':>6} {'calls':>5} {'build ms':>9} {'client ms':>10} "
        f"{'sandbox ms':>11} {'CPU ms':>8} {'traj/s':>7} {'x bare':>7} {'x 52KB':>7}"
    )
    print(header)
    print("-" * len(header))
    axes = [(1000, 1), (1000, 20), (1000, 100), (20_000, 20), (100_000, 20)]
    smallest: dict[tuple[str, int], float] = {}
    by_calls: dict[tuple[str, int], float] = {}
    for rows, calls in axes:
        size = database_size(rows) // 1024
        base = statistics.median(
            baseline_round(calls, rows, args.trajectories) for _ in range(args.rounds)
        )
        print(f"{'bare':9} {size:>6} {calls:>5} {'':>9} {base:>10.2f} {0:>11.2f} {base:>8.2f}")
        for tier in tiers:
            settings = SandboxSettings(tier=tier, build_timeout_s=120, call_timeout_s=60)
            try:
                row = median_of(
                    [
                        await sandbox_round(settings, calls, rows, args.trajectories)
                        for _ in range(args.rounds)
                    ]
                )
            except SandboxError as exc:
                print(f"{tier:9} {size:>6} {calls:>5} failed: {exc}")
                continue
            cpu = row["client"] + row["sandbox"]
            if rows == 1000:
                smallest[(tier, calls)] = cpu
                by_calls[(tier, calls)] = cpu
            growth = cpu / smallest.get((tier, calls), float("nan"))
            print(
                f"{tier:9} {size:>6} {calls:>5} {row['first']:>9.1f} {row['client']:>10.2f} "
                f"{row['sandbox']:>11.2f} {cpu:>8.2f} {row['per_s']:>7.1f} "
                f"{cpu / base:>6.1f}x {growth:>6.1f}x"
            )
    print()
    for tier in tiers:
        if (tier, 1) in by_calls and (tier, 100) in by_calls:
            per_call = (by_calls[(tier, 100)] - by_calls[(tier, 1)]) / 99
            fixed = by_calls[(tier, 1)] - per_call
            print(f"{tier}: fixed {fixed:.1f} ms per trajectory, {per_call:.2f} ms per call")
    for label, ms in cold_start(args.rounds).items():
        print(f"cold start: {label}: {ms:.0f} ms CPU")


if __name__ == "__main__":
    asyncio.run(main())
