"""`gem-graph stats`: the summary of a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gem_graph.cli.common import EXIT_OK, Subparsers, UsageError


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph stats RUN_DIR`."""
    parser = subparsers.add_parser(
        "stats",
        help="print the summary of a run folder",
        description="Print the end-of-run summary (yield per stage, top reject reasons, "
        "usage, wall time, sandbox isolation) from a run folder's store.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the summary of RUN_DIR's store."""
    from rich.console import Console

    from gem_graph.run.report import render_summary
    from gem_graph.run.store import RunStore, StoreError

    try:
        with RunStore(args.run_dir) as store:
            summary = store.summary()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        Console(soft_wrap=False).print(render_summary(summary))
    return EXIT_OK
