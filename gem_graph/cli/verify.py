"""`gem-graph verify`: replay records against an environment in the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, UsageError
from gem_graph.cli.flags import add_flags
from gem_graph.cli.settings_flags import SANDBOX_FLAGS, add_settings_file, settings_from_args
from gem_graph.settings import Settings


def register(subparsers: Subparsers) -> None:
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
    add_settings_file(parser)
    add_flags(parser, Settings, SANDBOX_FLAGS)
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print each problem readably (message index, code, the span and the evidence "
        "searched) instead of JSON lines",
    )
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Verify every record and print one JSON line each; 0 when all are ok, else 1.

    The records file is read as bytes, line by line, so invalid UTF-8 or an oversized
    line is that line's `invalid_record` verdict and the command goes on. Verdicts are
    printed as ASCII JSON, which any terminal or pipe accepts.
    """
    from gem_graph.cli.records import (
        MAX_RECORD_BYTES,
        RecordsFileError,
        bounded_lines,
        read_records,
    )
    from gem_graph.environment import EnvironmentFormatError, load_environment
    from gem_graph.sandbox import SandboxUnavailable
    from gem_graph.verify import verify_records

    try:
        load_environment(args.env)
    except EnvironmentFormatError as exc:
        raise UsageError(str(exc)) from None
    settings = settings_from_args(args, SANDBOX_FLAGS).settings

    try:
        records_file = open(args.records, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise UsageError(f"cannot read {args.records}: {exc}") from None

    async def verify_all() -> bool:
        all_ok = True
        lines = bounded_lines(records_file, MAX_RECORD_BYTES, str(args.records))
        async for result in verify_records(args.env, read_records(lines), settings):
            all_ok = all_ok and result.get("ok") is True
            print(_explained(result) if args.explain else _verdict_json(result), flush=True)
        return all_ok

    try:
        with records_file:
            all_ok = asyncio.run(verify_all())
    except SandboxUnavailable as exc:
        raise UsageError(f"the sandbox cannot run at the requested tier: {exc}") from None
    except RecordsFileError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK if all_ok else EXIT_FAILED


def _explained(result: dict[str, Any]) -> str:
    """One verdict for a reader: a headline, then one block per problem, in dialogue order."""
    problems = list(result.get("problems") or [])
    head = f"record {json.dumps(result.get('id'), ensure_ascii=True)}: " + (
        "ok" if result.get("ok") else f"{len(problems)} problem(s)"
    )
    if result.get("final_state_sha256"):
        head += f"  final state {result['final_state_sha256']}"
    lines = [head]
    for item in sorted(problems, key=lambda p: _message_index(str(p.get("where", "")))):
        where = str(item.get("where") or "record")
        index = _message_index(where)
        at = f"message {index}" if index < _NO_INDEX else "record"
        lines.append(f"  {at} [{item.get('code')}] at {where}")
        message = str(item.get("message", ""))
        lines.extend(f"      {line}" for line in message.splitlines() or [""])
    text = "\n".join(lines)
    return text.encode("ascii", "backslashreplace").decode("ascii")


_NO_INDEX = 10**9


def _message_index(where: str) -> int:
    """The dialogue position a problem's `where` names (`messages[7]...`), else last."""
    prefix = "messages["
    if where.startswith(prefix) and "]" in where:
        number = where[len(prefix) : where.index("]")]
        if number.isdigit():
            return int(number)
    return _NO_INDEX


def _verdict_json(result: dict[str, Any]) -> str:
    """One verdict as ASCII JSON; a verdict that cannot be encoded still prints a failure."""
    try:
        return json.dumps(result, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        record_id = result.get("id")
        printable_id = record_id if type(record_id) is str and record_id.isascii() else None
        fallback = {
            "id": printable_id,
            "ok": False,
            "problems": [
                {
                    "code": "internal_error",
                    "message": f"the verdict could not be printed ({type(exc).__name__})",
                    "where": "record",
                }
            ],
            "final_state_sha256": None,
        }
        return json.dumps(fallback, ensure_ascii=True)
