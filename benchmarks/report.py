"""Time and size of `gem-graph report` over a synthetic 10,000-record run.

    python benchmarks/report.py [--records 10000] [--rejects 3000] [--rounds 3]
        [--max-items 200 1000]

Writes a synthetic run folder (`gem_graph.report.synthetic`: multi-turn dialogues with
3 to 12 executed calls, row diffs, judge verdicts, usage and source spans over six saved
environments, and rejects at every stage), then, in each of `--rounds` rounds, measures
in this process:
- the baselines: `gem-graph stats` (the store's summary), and reading the store, every
  record parsed once (`RunStore.iter_records`), which any tool that looks at all the data
  must at least do;
- the report for each `--max-items`: statistics over the whole run plus the embedded
  sample, rendered and written (`write_report`), and the HTML file's size.
Wall time (`time.perf_counter`) and CPU time (`time.process_time`) are the median over
the rounds (range in brackets); the ratio is the report's CPU over the read-every-record
baseline's CPU, taken within each round.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gem_graph.report import write_report
from gem_graph.report.synthetic import write_synthetic_run
from gem_graph.run.store import RunStore


def measure(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def stats_only(run: Path) -> dict[str, Any]:
    with RunStore(run) as store:
        return store.summary()


def read_all(run: Path) -> int:
    with RunStore(run) as store:
        return sum(1 for _ in store.iter_records())


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rejects", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-items", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gem-report-bench-") as tmp:
        run = Path(tmp) / "run"
        wall, _, _ = measure(
            lambda: write_synthetic_run(run, records=args.records, rejects=args.rejects)
        )
        store_mb = (run / "run.sqlite").stat().st_size / 1e6
        print(
            f"synthetic run: {args.records:,} records + {args.rejects:,} rejects, "
            f"store {store_mb:.1f} MB, written in {wall:.1f} s; {args.rounds} rounds\n"
        )
        rows: dict[str, dict[str, list[float]]] = {}
        sizes: dict[str, tuple[int, int]] = {}

        def note(label: str, wall: float, cpu: float, base_cpu: float | None) -> None:
            row = rows.setdefault(label, {"wall": [], "cpu": [], "ratio": []})
            row["wall"].append(wall)
            row["cpu"].append(cpu)
            if base_cpu:
                row["ratio"].append(cpu / base_cpu)

        for _ in range(args.rounds):
            wall, cpu, _ = measure(lambda: stats_only(run))
            note("baseline: gem-graph stats (summary)", wall, cpu, None)
            wall, base_cpu, count = measure(lambda: read_all(run))
            assert count == args.records
            note("baseline: read every record", wall, base_cpu, base_cpu)
            for max_items in args.max_items:
                out = Path(tmp) / f"report-{max_items}.html"
                wall, cpu, done = measure(
                    lambda m=max_items, o=out: write_report(run, o, max_items=m)  # type: ignore[misc]
                )
                label = f"report, --max-items {max_items}"
                note(label, wall, cpu, base_cpu)
                sizes[label] = (done.bytes, done.shown)

    header = (
        f"{'step':<38} {'wall s':>22} {'CPU s':>22} {'CPU / read-all':>16} {'HTML':>9} {'items':>6}"
    )
    print(header)
    print("-" * len(header))
    for label, row in rows.items():
        ratio = f"{statistics.median(row['ratio']):.2f}×" if row["ratio"] else "-"
        size, shown = sizes.get(label, (0, 0))
        size_text = f"{size / 1e6:.2f} MB" if size else "-"
        print(
            f"{label:<38} {spread(row['wall']):>22} {spread(row['cpu']):>22} {ratio:>16} "
            f"{size_text:>9} {shown or '-':>6}"
        )


if __name__ == "__main__":
    main()
