"""`gem-graph doctor`: what the model server and this machine can do, and what a run would use."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, Subparsers
from gem_graph.cli.flags import add_flags
from gem_graph.cli.settings_flags import (
    MODEL_FLAGS,
    SANDBOX_FLAGS,
    add_settings_file,
    settings_from_args,
)
from gem_graph.settings import Settings

DOCTOR_FLAGS = MODEL_FLAGS + SANDBOX_FLAGS


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph doctor [--base-url URL] [--model M] [--tier T]`."""
    parser = subparsers.add_parser(
        "doctor",
        help="probe the model server and the sandbox; print what a run would use",
        description="Make the few tiny calls a run makes first: which structured-output "
        "method the server honours, how it takes a token cap, and how fast it answers. "
        "Then check the sandbox tier on this machine. Prints what `gem-graph run` would use "
        "with the same flags. Exit 0 when a run could start, 1 when not.",
    )
    add_settings_file(parser)
    add_flags(parser, Settings, DOCTOR_FLAGS)
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the probe's findings, the sandbox's and the run's choices."""
    from rich.console import Console

    settings = settings_from_args(args, DOCTOR_FLAGS, cli_defaults=True).settings
    console = Console(soft_wrap=True, highlight=False)
    model_ok = _report_model(console, settings)
    sandbox_ok = _report_sandbox(console, settings)
    return EXIT_OK if model_ok and sandbox_ok else EXIT_FAILED


def _report_model(console: Any, settings: Settings) -> bool:
    from rich.markup import escape
    from rich.table import Table

    from gem_graph.llm import aclose_chat_model, make_chat_model
    from gem_graph.pipeline import LLM_STAGES, output_cap
    from gem_graph.probe import ModelProfile, ProbeFailed, probe_model
    from gem_graph.run.config import redact_url
    from gem_graph.run.endpoint import missing_key_hint

    model = settings.model
    where = redact_url(model.base_url or "") or "the OpenAI API (default URL)"
    console.print(f"[bold]model[/] {escape(model.name)} at {escape(where)}")
    hint = missing_key_hint(model.base_url)
    if hint:
        console.print(f"[red]✗[/] {escape(hint)}")
        return False
    llm = make_chat_model(model)

    async def probe() -> ModelProfile:
        try:
            return await probe_model(llm, endpoint=model.base_url, model=model.name)
        finally:
            await aclose_chat_model(llm)

    try:
        profile = asyncio.run(probe())
    except ProbeFailed as exc:
        console.print(f"[red]✗[/] {escape(str(exc))}")
        return False
    trials = Table("method", "result", "seconds", box=None, pad_edge=False)
    for trial in profile.trials:
        mark = "[green]works[/]" if trial.works else escape(trial.detail)
        trials.add_row(trial.method, mark, f"{trial.seconds:.2f}")
    console.print(trials)
    run = settings.updated(model={"server": profile.server.model_dump()}).model
    method = model.structured_method
    if method == "auto":
        method_text = f"auto, starting at {profile.server.method or 'json_schema'}"
    else:
        method_text = f"{method} (set explicitly)"
    console.print(f"[green]✓[/] a run would use: structured output {method_text}")
    cap = profile.server.cap_parameter if profile.caps_honoured else "none honoured"
    console.print(f"  token cap sent as: {cap}")
    if not profile.caps_honoured:
        console.print("  [yellow]![/] the server obeyed no cap form: long replies can run on")
    speed = profile.server.tokens_per_s
    console.print(f"  speed: {f'~{speed:.0f} tokens/s' if speed else 'not measured'}")
    timeouts = ", ".join(
        f"{stage} {run.request_timeout(output_cap(stage, run.max_tokens)):.0f} s"
        for stage in LLM_STAGES
    )
    source = "--timeout" if model.timeout_s is not None else "fitted to the server"
    console.print(f"  request timeouts ({source}): {timeouts}")
    return True


def _report_sandbox(console: Any, settings: Settings) -> bool:
    from rich.markup import escape

    from gem_graph.sandbox.probe import probe

    tiers = probe()["tiers"]
    wanted = settings.sandbox.tier
    for tier, status in tiers.items():
        mark = "[green]✓[/]" if status is True else "[red]✗[/]"
        note = "" if status is True else f": {escape(str(status))}"
        chosen = "  (requested)" if tier == wanted else ""
        console.print(f"{mark} sandbox tier {tier}{note}{chosen}")
    return tiers.get(wanted) is True
