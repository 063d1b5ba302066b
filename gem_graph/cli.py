"""The `gem-graph` command line: one small function per subcommand.

Exit codes: 0 success, 1 the command ran but found failures (e.g. records that do not
verify), 2 a usage error (unreadable path, bad environment directory), reported as one
line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from gem_graph import __version__
from gem_graph.settings import SandboxTier, Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


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
    """The argument parser; each subcommand registers itself through an `add_*` function."""
    parser = argparse.ArgumentParser(
        prog="gem-graph",
        description="Turn procedural text into verified, executed multi-turn tool-use "
        "trajectories.",
    )
    parser.add_argument("--version", action="version", version=f"gem-graph {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    add_verify(subparsers)
    return parser


# ---- verify -------------------------------------------------------------------------------


def add_verify(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `gem-graph verify --env ENV_DIR RECORDS.jsonl`."""
    parser = subparsers.add_parser(
        "verify",
        help="replay records against an environment in the sandbox",
        description="Verify trajectory records (ours or third-party) against an environment: "
        "structure, grounding, and every tool call replayed in the sandbox. Prints one JSON "
        'line per record: {"id", "ok", "problems", "final_state_sha256"}.',
    )
    parser.add_argument(
        "--env",
        required=True,
        type=Path,
        metavar="ENV_DIR",
        help="environment directory (environment.json, schema.sql, ...)",
    )
    parser.add_argument(
        "records",
        type=Path,
        metavar="RECORDS.jsonl",
        help="one record per line; only `messages` is required",
    )
    parser.add_argument(
        "--tier",
        choices=get_args(SandboxTier),
        default=None,
        help="sandbox isolation tier (default: from settings, 'standard')",
    )
    parser.add_argument(
        "--allow-unsafe-none",
        action="store_true",
        help="permit --tier none (rlimits only) for code you trust",
    )
    parser.set_defaults(command=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    """Verify every record and print one JSON line each; 0 when all are ok, else 1."""
    from gem_graph.environment import EnvironmentFormatError, load_environment
    from gem_graph.sandbox import SandboxUnavailable
    from gem_graph.verify import read_records, verify_records

    try:
        load_environment(args.env)
    except EnvironmentFormatError as exc:
        raise UsageError(str(exc)) from None
    try:
        lines = args.records.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.records}: {exc}") from None

    sandbox = Settings().sandbox
    if args.tier is not None:
        sandbox = sandbox.model_copy(update={"tier": args.tier})
    if args.allow_unsafe_none:
        sandbox = sandbox.model_copy(update={"allow_unsafe_none": True})
    settings = Settings(sandbox=sandbox)

    async def verify_all() -> bool:
        all_ok = True
        async for result in verify_records(args.env, read_records(lines), settings):
            all_ok = all_ok and bool(result["ok"])
            print(json.dumps(result, ensure_ascii=False), flush=True)
        return all_ok

    try:
        all_ok = asyncio.run(verify_all())
    except SandboxUnavailable as exc:
        raise UsageError(f"the sandbox cannot run at the requested tier: {exc}") from None
    return EXIT_OK if all_ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
