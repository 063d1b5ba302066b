"""`gem-graph report`: a run folder as one self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from gem_graph.cli.common import EXIT_OK, Subparsers, UsageError


def _count(text: str) -> int:
    """A whole number of 0 or more (argparse type)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph report RUN_DIR [-o FILE.html] [--open] [--max-items N]`."""
    from gem_graph.report import DEFAULT_MAX_ITEMS, REPORT_FILE

    parser = subparsers.add_parser(
        "report",
        help="write an HTML report and trajectory viewer of a run folder",
        description="Write one self-contained HTML file (no network needed, opens from "
        "file://): the run's funnel, reject reasons, cost, attempts and distributions, and "
        "a viewer of kept and rejected trajectories with their tool calls, outputs, row "
        "changes, judge verdicts, environments and source spans.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.html",
        help=f"where to write the page (default: RUN_DIR/{REPORT_FILE})",
    )
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument(
        "--max-items",
        type=_count,
        default=DEFAULT_MAX_ITEMS,
        metavar="N",
        help="trajectories the viewer embeds, sampled evenly over environments and reject "
        f"reasons; statistics always cover the whole run (default: {DEFAULT_MAX_ITEMS})",
    )
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the report and print where; `--open` opens it."""
    import webbrowser

    from gem_graph.report import write_report
    from gem_graph.run.store import StoreError

    try:
        done = write_report(args.run_dir, args.output, max_items=args.max_items)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # a folder, a missing parent, no permission
        raise UsageError(f"cannot write {exc.filename or args.output}: {exc.strerror}") from None
    print(f"Report: {done.path} ({done.bytes / 1e6:.1f} MB)")
    print(done.note)
    if args.open:
        webbrowser.open(done.path.resolve().as_uri())
    return EXIT_OK
