"""`gem-graph compare`: two runs on the same texts, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from gem_graph.cli.common import EXIT_OK, EXIT_USAGE, Subparsers, UsageError


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph compare RUN_A RUN_B`."""
    parser = subparsers.add_parser(
        "compare",
        help="side-by-side table of two runs on the same texts (e.g. pipeline vs synthesizer)",
    )
    parser.add_argument("run_a", type=Path, metavar="RUN_A")
    parser.add_argument("run_b", type=Path, metavar="RUN_B")
    parser.add_argument(
        "--html",
        action="store_true",
        help="also write the comparison as a self-contained HTML page",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="where the page goes; implies --html (default: compare_<A>_vs_<B>.html here)",
    )
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the comparison table of two run folders (and write its page with `--html`);
    2 when one cannot be read."""
    from rich.console import Console

    from gem_graph.compare import compare_runs, load_run_summary
    from gem_graph.run.store import StoreError

    console = Console()
    try:
        a, b = load_run_summary(args.run_a), load_run_summary(args.run_b)
    except StoreError as exc:
        Console(stderr=True).print(f"gem-graph compare: {exc}")
        return EXIT_USAGE
    console.print(compare_runs(a, b).table())
    if a["documents"] != b["documents"]:
        console.print(
            f"[yellow]note:[/] the runs finished different numbers of documents "
            f"({a['documents']} vs {b['documents']}); compare runs over the same texts."
        )
    if args.html or args.output is not None:
        from gem_graph.report.compare import write_compare_report

        try:
            path = write_compare_report(args.run_a, args.run_b, args.output, summaries=(a, b))
        except OSError as exc:  # a folder, a missing parent, no permission
            raise UsageError(
                f"cannot write {exc.filename or args.output}: {exc.strerror}"
            ) from None
        console.print(f"Comparison page: {path}", markup=False, soft_wrap=True)
    return EXIT_OK
