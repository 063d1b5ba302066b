"""The `gem-graph` command line: one module per subcommand, each with `register` (its
options) and `handle` (run it, return the exit code).

Exit codes: 0 success, 1 the command ran but found failures (e.g. records that do not
verify), 2 a usage error (unreadable path, bad environment directory), reported as one
line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from gem_graph import __version__
from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

COMMANDS = (
    "demo",
    "run",
    "config",
    "stats",
    "export",
    "verify",
    "distill",
    "train",
    "compare",
    "doctor",
    "report",
    "eval",
)
"""Subcommand modules under `gem_graph.cli`, in the order `--help` lists them."""

Command = Callable[[argparse.Namespace], int]


EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process arguments), run the subcommand, return its code.

    SIGTERM ends a command as Ctrl-C does (a run closes its session, finished work is
    kept); a reader that goes away (`| head`) ends it quietly.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    terminated = threading.Event()
    try:
        with _terminate_like_interrupt(terminated):
            code = command(args)
        sys.stdout.flush()
        return code
    except UsageError as exc:
        print(f"gem-graph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if terminated.is_set():
            print("gem-graph: terminated; finished work is kept", file=sys.stderr)
            return EXIT_TERMINATED
        print("gem-graph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the exit-time flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


@contextlib.contextmanager
def _terminate_like_interrupt(came: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM becomes SIGINT (asyncio cancels a running loop's main task on
    SIGINT, so `finally` blocks run) and sets `came`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        came.set()
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
