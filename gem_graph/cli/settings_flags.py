"""The flags that set `Settings` fields, and loading settings from a parsed command line.

Every flag's type, choices, default and help come from its field (`gem_graph.settings`);
this table only names the option. `gem-graph config show` takes the same flags.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from gem_graph.cli.common import UsageError
from gem_graph.cli.flags import Flag, add_flags, flag_names, flag_values
from gem_graph.settings import Settings

MODEL_FLAGS = (
    Flag("--model", "model.name"),
    Flag("--base-url", "model.base_url"),
    Flag("--temperature", "model.temperature"),
    Flag("--max-tokens", "model.max_tokens"),
    Flag("--structured-method", "model.structured_method"),
    Flag("--timeout", "model.timeout_s", default="fitted to the probed server, else 120"),
    Flag("--no-probe", "model.probe", sets=False, help="skip the server capability probe"),
    Flag("--http-client", "model.http_client", default="aiohttp when installed, else httpx"),
)
RUN_FLAGS = (
    Flag("--engine", "run.engine"),
    Flag("--ray-address", "run.ray_address", metavar="ADDR"),
    Flag("--concurrency", "run.concurrency"),
    Flag("--limit", "run.limit"),
    Flag("--workers", "run.workers"),
    Flag("--rps", "run.requests_per_second"),
    Flag("--segment-chars", "run.segment_chars"),
    Flag("--text-field", "run.text_field"),
    Flag("--id-field", "run.id_field"),
    Flag(
        "--cache",
        "run.cache",
        metavar="PATH",
        help="LLM response cache file",
        default="RUN_DIR/llm_cache.sqlite",
    ),
    Flag("--no-cache", "run.cache", sets=False, help="do not cache model responses"),
)
SANDBOX_FLAGS = (
    Flag("--tier", "sandbox.tier"),
    Flag(
        "--allow-unsafe-none",
        "sandbox.allow_unsafe_none",
        sets=True,
        help="permit --tier none (rlimits only), for code you trust",
    ),
)
PIPELINE_FLAGS = (
    Flag("--mode", "pipeline.mode"),
    Flag(
        "--no-execute",
        "pipeline.execute",
        sets=False,
        help="do not implement tools as code nor replay calls in the sandbox",
    ),
    Flag("--no-refine", "pipeline.refine", sets=False, help="skip the refine stage"),
    Flag("--no-judge", "pipeline.judge", sets=False, help="skip the LLM judge"),
)
ALL_FLAGS = MODEL_FLAGS + RUN_FLAGS + SANDBOX_FLAGS + PIPELINE_FLAGS


def add_settings_file(parser: argparse.ArgumentParser) -> None:
    """`--settings FILE.toml`, the lowest explicit source."""
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE.toml",
        help="settings file with the sections of Settings ([model], [attempts], [sandbox], "
        "[pipeline], [run]); GEM_* variables and flags override it",
    )


def add_all_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Every settings flag, grouped by section, plus `--settings` and `--attempts`."""
    add_settings_file(parser)
    for title, flags in (
        ("model", MODEL_FLAGS),
        ("run", RUN_FLAGS),
        ("sandbox", SANDBOX_FLAGS),
        ("pipeline", PIPELINE_FLAGS),
    ):
        group = parser.add_argument_group(title)
        add_flags(group, Settings, flags)
        if title == "run":
            group.add_argument(
                "--attempts",
                action="append",
                default=[],
                metavar="STAGE=N",
                help="validator-loop attempts for a stage, e.g. ground=4 (repeatable)",
            )


def command_defaults() -> dict[str, Any]:
    """Where the command line's defaults differ from the library's.

    The command line owns its event loop, so it takes the aiohttp transport (about 2 ms
    less CPU per model call) when aiohttp is installed; the library default stays httpx.
    """
    if importlib.util.find_spec("aiohttp") is None:
        return {}
    return {"model": {"http_client": "aiohttp"}}


def settings_from_args(
    args: argparse.Namespace, flags: tuple[Flag, ...] = ALL_FLAGS, *, cli_defaults: bool = False
) -> Any:
    """`LoadedSettings` from `--settings`, `GEM_*` variables and the flags in `args`."""
    from gem_graph.run.config import ConfigError, deep_merge, load_settings, parse_attempts

    try:
        given = flag_values(args, flags)
        names = flag_names(flags)
        attempts = parse_attempts(getattr(args, "attempts", None) or [])
        if attempts:
            given = deep_merge(given, {"attempts": attempts})
            names.update({f"attempts.{field}": "--attempts" for field in attempts})
        return load_settings(
            toml=getattr(args, "settings", None),
            flags=given,
            flag_names=names,
            command_defaults=command_defaults() if cli_defaults else None,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
