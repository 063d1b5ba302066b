"""CPU per document in every process, execution on and off, on the bundled demo.

    python benchmarks/document_cpu.py [--rounds 3]

Runs the demo corpus (scripted model replies, no server) through `run_corpus` and counts
the CPU of this process plus every process it started and reaped: the sandbox's fork
server, its episode monitors and their tool processes. Start-up of the run and of the
sandbox is included, as a user pays it. The ratio column compares execution on with the
same corpus and settings with execution off, measured in the same run; each figure is the
median of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from gem_graph.demo import demo_documents, demo_settings, load_demo_model
from gem_graph.run.runner import RunOptions, run_corpus


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_round(execute: bool) -> tuple[float, int]:
    """CPU ms per document and documents kept, for one run of the demo corpus."""
    documents = demo_documents()  # the scripted replies are keyed by document id
    settings = demo_settings()
    pipeline = settings.pipeline.model_copy(update={"execute": execute})
    settings = settings.model_copy(update={"pipeline": pipeline})
    run_dir = Path(tempfile.mkdtemp(prefix="gem-cpu-"))
    start_self, start_children = time.process_time(), children_cpu()
    try:
        summary = await run_corpus(
            iter(documents),
            llm=load_demo_model(),
            settings=settings,
            options=RunOptions(run_dir=run_dir, progress=False),
        )
        await asyncio.sleep(0.5)  # the sandbox's processes are reaped
        cpu = time.process_time() - start_self + children_cpu() - start_children
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1000 * cpu / len(documents), summary.kept


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'execution':10} {'CPU ms/doc':>11} {'kept':>5} {'x off':>6}")
    medians: dict[bool, float] = {}
    for execute in (False, True):
        rows = [await one_round(execute) for _ in range(args.rounds)]
        medians[execute] = statistics.median(ms for ms, _ in rows)
        ratio = medians[execute] / medians[False]
        label = "on" if execute else "off"
        print(f"{label:10} {medians[execute]:>11.1f} {rows[0][1]:>5} {ratio:>5.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
