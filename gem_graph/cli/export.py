"""`gem-graph export`: a run's kept trajectories as training or evaluation data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Subparsers


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph export RUN_DIR --format F [-o FILE]`."""
    from gem_graph.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="write a run's kept trajectories as training or evaluation data",
        description="openai: {messages, tools} per line (TRL, HF datasets); sharegpt: "
        "LLaMA-Factory's tool format; hermes: text in the Hermes tool template; tasks: "
        "instruction, environment, scenario and expected final state for agent evaluation.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSONL file to write (default: standard output)",
    )
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Export a run; 0 all records written, 1 some skipped (reasons on stderr), 2 unusable."""
    from gem_graph.export import UnusableRun, export_run

    try:
        destination = sys.stdout if args.output is None else args.output
        done = export_run(args.run_dir, args.format, destination)
    except UnusableRun as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    for reason in done.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    where = args.output if args.output is not None else "stdout"
    print(f"wrote {done.written} {args.format} row(s) to {where}", file=sys.stderr)
    return EXIT_FAILED if done.skipped else EXIT_OK
