"""`gem-graph eval`: play an agent on exported tasks, each episode in the sandbox."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, UsageError
from gem_graph.cli.flags import add_flags
from gem_graph.cli.settings_flags import SANDBOX_FLAGS, add_settings_file, settings_from_args
from gem_graph.settings import ModelSettings, Settings


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph eval TASKS.jsonl (--agent gold | --agent-model M) -o EVAL_DIR`."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate an agent on exported tasks (pass^k, per environment)",
        description="Play each task of a `tasks` export with an agent: every tool call runs "
        "in the sandbox against the task's initial state. Reward 1 when the final state is "
        "the expected one and every required fact was told to the user. Results go to a "
        "resumable store in EVAL_DIR; re-running the command resumes.",
    )
    parser.add_argument("tasks", type=Path, metavar="TASKS.jsonl")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", choices=["gold"], help="gold: replay each task's reference")
    who.add_argument("--agent-model", metavar="M", help="an OpenAI-compatible tool-calling model")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="EVAL_DIR")
    parser.add_argument(
        "--user-model",
        metavar="U",
        help="model playing the user from the task's goal (default: a scripted user saying "
        "the reference dialogue's user turns)",
    )
    parser.add_argument("--base-url", help="agent server (default: OPENAI_BASE_URL)")
    parser.add_argument("--user-base-url", help="user server (default: --base-url)")
    parser.add_argument("--trials", type=int, default=1, metavar="K", help="trials per task")
    parser.add_argument("--concurrency", type=int, default=4, help="episodes at once")
    parser.add_argument("--max-turns", type=int, default=30, help="assistant turns per episode")
    parser.add_argument(
        "--time-budget", type=float, default=300.0, metavar="S", help="seconds per episode"
    )
    parser.add_argument(
        "--token-budget",
        type=int,
        default=None,
        metavar="N",
        help="model tokens (agent and user) per episode",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=2048,
        metavar="N",
        help="cap on one model reply (agent and user), sent in the form the server obeys",
    )
    parser.add_argument("--seed", type=int, default=0, help="trial t uses seed + t")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--environments",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="folder of environments (repeatable; default: environments/ beside the tasks "
        "file or one level up, then the bundled ones)",
    )
    add_settings_file(parser)
    add_flags(parser, Settings, SANDBOX_FLAGS)
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the evaluation; 0 when every episode scored (and, for gold, scored 1.0), else 1."""
    from gem_graph.eval.catalog import default_roots
    from gem_graph.eval.environment import EpisodeLimits
    from gem_graph.eval.runner import EvalConfig, pending_count
    from gem_graph.eval.store import ConfigMismatch
    from gem_graph.eval.task import read_tasks
    from gem_graph.sandbox import SandboxUnavailable

    if min(args.trials, args.concurrency, args.max_turns, args.max_tokens) < 1:
        raise UsageError("--trials, --concurrency, --max-turns and --max-tokens must be at least 1")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"{args.output} exists and is not a folder; give -o a folder")
    try:
        tasks = read_tasks(args.tasks)
        args.tasks_sha256 = hashlib.sha256(args.tasks.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(f"cannot read {args.tasks}: {exc}") from None
    settings = settings_from_args(args, SANDBOX_FLAGS).settings
    config = EvalConfig(
        trials=args.trials,
        concurrency=args.concurrency,
        limits=EpisodeLimits(
            max_turns=args.max_turns,
            time_budget_s=args.time_budget,
            token_budget=args.token_budget,
        ),
        environment_roots=args.environments or default_roots(args.tasks),
        sandbox=settings.sandbox,
    )
    total = pending_count(tasks, args.output, args.trials)
    try:
        summary = asyncio.run(_run(tasks, config, args, total))
    except ConfigMismatch as exc:
        raise UsageError(str(exc)) from None
    except SandboxUnavailable as exc:
        raise UsageError(f"sandbox unavailable: {exc}") from None
    from gem_graph.eval.summary_table import print_summary, write_summary

    write_summary(summary, args.output)
    print_summary(summary, args.output)
    complete = summary["failed"] == 0 and not summary["bad_tasks"]
    if args.agent == "gold":
        complete = complete and summary["pass_hat"].get("1") == 1.0
    return EXIT_OK if complete else EXIT_FAILED


async def _run(
    tasks: list[Any], config: Any, args: argparse.Namespace, total: int
) -> dict[str, Any]:
    from rich.progress import Progress

    from gem_graph.eval.runner import run_eval

    make_agent, make_user, describe = await _players(args)

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        job = bar.add_task("episodes", total=total)
        return await run_eval(
            tasks,
            make_agent=make_agent,
            make_user=make_user,
            out_dir=args.output,
            config=config,
            describe=describe,
            progress=lambda result: bar.advance(job),
        )


async def _players(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """Agent and user factories (one per trial, seeded) and how they are described."""
    from gem_graph.eval.agents import ChatModelAgent, GoldAgent
    from gem_graph.eval.user import USER_PROMPT, LLMUser, ScriptedUser
    from gem_graph.prompts import load_prompt

    describe: dict[str, Any] = {"seed": args.seed, "tasks_sha256": args.tasks_sha256}
    if args.agent != "gold" or args.user_model:  # what the models' replies depend on
        describe["temperature"] = args.temperature
        describe["max_tokens"] = args.max_tokens
    if args.agent == "gold":
        describe["agent"] = {"kind": "gold"}
        make_agent: Any = lambda trial: GoldAgent()  # noqa: E731
    else:
        agent_llm = await _capped(
            ModelSettings(
                name=args.agent_model, temperature=args.temperature, **_url(args.base_url)
            ),
            args.max_tokens,
        )
        describe["agent"] = {"kind": "model", "model": args.agent_model}
        describe["base_url"] = _server(args.base_url)
        make_agent = lambda trial: ChatModelAgent(agent_llm, seed=args.seed + trial)  # noqa: E731
    if args.user_model:
        user_llm = await _capped(
            ModelSettings(
                name=args.user_model,
                temperature=args.temperature,
                **_url(args.user_base_url or args.base_url),
            ),
            args.max_tokens,
        )
        describe["user"] = {
            "kind": "llm",
            "model": args.user_model,
            "prompt": load_prompt(USER_PROMPT).key,
        }
        describe["user_base_url"] = _server(args.user_base_url or args.base_url)
        make_user: Any = lambda trial: LLMUser(user_llm, seed=args.seed + trial)  # noqa: E731
    else:
        describe["user"] = {"kind": "scripted"}
        make_user = lambda trial: ScriptedUser()  # noqa: E731
    return make_agent, make_user, describe


async def _capped(model: ModelSettings, max_tokens: int) -> Any:
    """A chat model whose replies stop at `max_tokens`, in the cap form its server obeys
    (llama-cpp-python ignores `max_completion_tokens`; a reply that runs on keeps a
    one-at-a-time server busy after the episode gave up). The probe says which form."""
    from gem_graph.llm import StructuredLLM, make_chat_model
    from gem_graph.probe import ProbeFailed, probed_settings

    llm = make_chat_model(model)
    try:
        settings = await probed_settings(llm, Settings(model=model))
    except ProbeFailed as exc:
        raise UsageError(str(exc)) from None
    structured = StructuredLLM(llm, server=settings.model.server)
    return structured.runnable(None, "json_text", max_tokens)


def _server(base_url: str | None) -> str | None:
    """The server a model is asked: `--base-url`, else OPENAI_BASE_URL (stored with results)."""
    return base_url or os.environ.get("OPENAI_BASE_URL")


def _url(base_url: str | None) -> dict[str, Any]:
    """`base_url` when given; otherwise the model settings' default (OPENAI_BASE_URL)."""
    return {"base_url": base_url} if base_url else {}
