"""`gem-graph demo`: the whole pipeline offline on the bundled corpus."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import get_args

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, Subparsers
from gem_graph.settings import SandboxTier


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph demo [-o RUN_DIR]`."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline on the bundled corpus (scripted model replies)",
        description="Run the full pipeline (sandbox execution included) on a bundled corpus "
        "of eight texts with SCRIPTED, hand-written model replies: no model is called. "
        "Writes a run folder, prints its summary and writes its HTML report "
        "(RUN_DIR/report.html).",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/demo"), metavar="RUN_DIR")
    parser.add_argument("--tier", choices=get_args(SandboxTier), default=None)
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the offline demo, print its summary and how to go further, write its report;
    0 when complete."""
    from gem_graph.demo import (
        REAL_MODEL_HINT,
        SANDBOX_HINT,
        SCRIPTED_NOTICE,
        demo_settings,
    )
    from gem_graph.demo import run_demo as run_demo_corpus
    from gem_graph.report import write_report
    from gem_graph.run.report import summary_text
    from gem_graph.run.runner import RunError

    print(SCRIPTED_NOTICE, file=sys.stderr)
    try:
        result = asyncio.run(
            run_demo_corpus(
                args.output, settings=demo_settings(args.tier), progress=sys.stderr.isatty()
            )
        )
    except RunError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        if "sandbox" in str(exc):
            print(SANDBOX_HINT, file=sys.stderr)
        return EXIT_FAILED
    print(summary_text(result.summary))
    print(SCRIPTED_NOTICE)
    print(f"Run folder: {args.output}  (try: gem-graph export {args.output} --format openai)")
    print(REAL_MODEL_HINT)
    report = write_report(args.output)
    print(f"Report: {report.path}  (open it in a browser; it needs no network)")
    return EXIT_OK if result.complete else EXIT_FAILED
