"""The `gem-graph` command line: one module per subcommand, each with `register` (its
options) and `handle` (run it, return the exit code).

Exit codes: 0 success, 1 the command ran but found failures (e.g. records that do not
verify), 2 a usage error (unreadable path, bad environment directory), reported as one
line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from gem_graph import __version__
from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

COMMANDS = ("demo", "run", "config", "stats", "export", "verify", "distill", "train", "compare")
"""Subcommand modules under `gem_graph.cli`, in the order `--help` lists them."""

Command = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process arguments), run the subcommand, return its code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except UsageError as exc:
        print(f"gem-graph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gem-graph: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand module registers its own options."""
    parser = argparse.ArgumentParser(
        prog="gem-graph",
        description="Turn procedural text into verified, executed multi-turn tool-use "
        "trajectories.",
    )
    parser.add_argument("--version", action="version", version=f"gem-graph {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gem_graph.cli.{name}").register(subparsers)
    return parser
