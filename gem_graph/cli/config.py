"""`gem-graph config show`: the effective settings and where each value came from."""

from __future__ import annotations

import argparse
import json

from gem_graph.cli.common import EXIT_OK, Subparsers
from gem_graph.cli.settings_flags import add_all_settings_flags, settings_from_args


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph config show [--settings FILE] [--json] [run flags]`."""
    parser = subparsers.add_parser(
        "config", help="show the effective settings and where each value came from"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print every setting, its value and its source",
        description="Print the settings `gem-graph run` would use with the same --settings "
        "file, GEM_* variables and flags: each value with its source (flag, env, file, "
        "command-line default or default). The API key is never shown: it is read only "
        "from OPENAI_API_KEY.",
    )
    show.add_argument("--json", action="store_true", help="print JSON: {name: {value, source}}")
    add_all_settings_flags(show)
    show.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the effective settings with provenance."""
    from rich.console import Console
    from rich.table import Table

    loaded = settings_from_args(args, cli_defaults=True)
    rows = list(loaded.rows())
    if args.json:
        shown = {name: {"value": value, "source": source} for name, value, source in rows}
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return EXIT_OK
    table = Table("setting", "value", "source", box=None, pad_edge=False)
    for name, value, source in rows:
        style = "dim" if source == "default" else None
        table.add_row(name, json.dumps(value, ensure_ascii=False), source, style=style)
    Console(soft_wrap=False).print(table)
    return EXIT_OK
