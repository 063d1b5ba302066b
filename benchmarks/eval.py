"""Episodes per second of the gold replay agent: the sandbox's cost of `gem-graph eval`.

Runs the offline demo once, exports its tasks, then plays every task `--trials` times with
the gold agent and the scripted user at each concurrency, `--rounds` times, and prints the
median episodes per second and CPU per episode (this process plus every sandbox process
that ended: `Sandbox.reaped_cpu_s`). No model is called, so this is the price of the
environment itself: an episode's fork, its tool calls, the final state and the diff.

    .venv/bin/python benchmarks/eval.py [--trials 16] [--rounds 3] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gem_graph.demo import demo_settings, run_demo
from gem_graph.eval.agents import GoldAgent
from gem_graph.eval.runner import EvalConfig, run_eval, sandbox_settings_for
from gem_graph.eval.task import read_tasks
from gem_graph.export import export_run
from gem_graph.sandbox import Sandbox


async def one_round(
    tasks_file: Path, envs: Path, out: Path, trials: int, concurrency: int
) -> dict[str, float]:
    tasks = read_tasks(tasks_file)
    config = EvalConfig(trials=trials, concurrency=concurrency, environment_roots=[envs])
    async with Sandbox(sandbox_settings_for(config.sandbox, config.limits)) as sandbox:
        # warm the templates outside the clock: one episode per environment
        await run_eval(
            tasks,
            make_agent=lambda t: GoldAgent(),
            out_dir=out / "warm",
            config=EvalConfig(environment_roots=[envs]),
            sandbox=sandbox,
        )
        cpu0, reaped0, wall0 = time.process_time(), sandbox.reaped_cpu_s, time.perf_counter()
        summary = await run_eval(
            tasks,
            make_agent=lambda t: GoldAgent(),
            out_dir=out / "run",
            config=config,
            sandbox=sandbox,
        )
        wall = time.perf_counter() - wall0
        client = time.process_time() - cpu0
        await asyncio.sleep(0.2)  # let the last episodes be reaped
        workers = sandbox.reaped_cpu_s - reaped0
    episodes = summary["scored"]
    assert summary["pass_hat"]["1"] == 1.0, summary
    return {
        "episodes": episodes,
        "episodes_per_s": episodes / wall,
        "cpu_ms_per_episode": 1000 * (client + workers) / episodes,
        "client_ms_per_episode": 1000 * client / episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "demo"
        asyncio.run(run_demo(run_dir, settings=demo_settings()))
        tasks_file = run_dir / "tasks.jsonl"
        export_run(run_dir, "tasks", tasks_file)
        print("| concurrency | episodes/round | episodes/s | CPU ms/episode | of which client |")
        print("|---:|---:|---:|---:|---:|")
        for concurrency in args.concurrency:
            rows = [
                asyncio.run(
                    one_round(
                        tasks_file,
                        run_dir / "environments",
                        Path(tmp) / f"c{concurrency}r{r}",
                        args.trials,
                        concurrency,
                    )
                )
                for r in range(args.rounds)
            ]
            med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
            print(
                f"| {concurrency} | {med['episodes']:.0f} | {med['episodes_per_s']:.1f} "
                f"| {med['cpu_ms_per_episode']:.1f} | {med['client_ms_per_episode']:.1f} |"
            )


if __name__ == "__main__":
    main()
