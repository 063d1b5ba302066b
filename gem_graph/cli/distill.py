"""`gem-graph distill`: the Trajectory Synthesizer's training set from a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subparsers


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph distill RUN_DIR -o DIR`."""
    parser = subparsers.add_parser(
        "distill",
        help="build the Trajectory Synthesizer's training set from a run's kept records",
        description="Pairs of (fixed instruction + source text) → one target document with "
        "tools, environment and dialogue; train/validation split by source document; "
        "OpenAI-messages and ShareGPT JSONL plus a dataset card.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="the run's input, for runs whose store predates stored texts",
    )
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Distill, print a short summary; 0 when at least one example was written."""
    from gem_graph.run.corpus import CorpusError
    from gem_graph.run.store import StoreError
    from gem_graph.synthesizer.distill import distill_run

    try:
        result = distill_run(
            args.run_dir,
            args.output,
            val_fraction=args.val_fraction,
            seed=args.seed,
            corpus=args.corpus,
        )
    except (OSError, ValueError, StoreError, CorpusError) as exc:
        print(f"gem-graph distill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    counts, documents = result.counts, result.documents
    print(
        f"wrote {counts['train']} train and {counts['validation']} validation examples "
        f"({documents['train']} + {documents['validation']} source documents) to "
        f"{result.out_dir}"
    )
    for reason, count in sorted(result.skipped.items()):
        print(f"  left out {count}: {reason}")
    total = sum(counts.values())
    if total == 0 and not result.skipped:
        print(f"  {_nothing_kept(args.run_dir)}", file=sys.stderr)
    if total == 0 and result.skipped.get("source text unavailable"):
        print(
            "  this run's store holds no source texts (it predates stored texts): pass the "
            "run's corpus with --corpus",
            file=sys.stderr,
        )
    return EXIT_OK if total else EXIT_FAILED


def _nothing_kept(run_dir: Path) -> str:
    """Why a run gave nothing to distill: its document counts and where to look."""
    from gem_graph.run.store import RunStore

    with RunStore(run_dir) as store:
        docs = store.summary()["documents"]
    return (
        f"the run kept no trajectories ({docs['total']} document(s): {docs['rejected']} "
        f"rejected, {docs['failed']} failed); `gem-graph stats {run_dir}` shows why"
    )
