"""`gem-graph run`: a corpus through the pipeline into a resumable run folder."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gem_graph.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, UsageError
from gem_graph.cli.settings_flags import add_all_settings_flags, settings_from_args
from gem_graph.settings import Settings


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph run INPUT -o RUN_DIR`."""
    parser = subparsers.add_parser(
        "run",
        help="synthesize trajectories from a corpus into a run folder (resumable)",
        description="Run every document of INPUT (JSONL, a folder of .txt/.md files, or "
        "Parquet) through the pipeline into RUN_DIR. Re-running the same command resumes: "
        "finished documents are skipped. The API key is read only from OPENAI_API_KEY. "
        "Settings come from the flags, then GEM_* variables (GEM_SANDBOX__TIER=strict), "
        "then --settings FILE.toml; `gem-graph config show` prints the result. "
        "Exit 0 when every document was processed, 1 when the run stopped or some documents "
        "failed on the model transport (re-run to retry them), 2 on a usage error.",
    )
    parser.add_argument(
        "input",
        type=corpus_location,
        metavar="INPUT",
        help="JSONL file, folder, or Parquet: a local path or a pyarrow filesystem URI "
        "(s3://, gs://, hdfs://, file://)",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="RUN_DIR")
    add_all_settings_flags(parser)
    invocation = parser.add_argument_group("this invocation")
    invocation.add_argument(
        "--force-new-settings",
        action="store_true",
        help="continue RUN_DIR even though it was run with other output settings",
    )
    invocation.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(command=handle)


def corpus_location(value: str) -> str | Path:
    """A URI (`scheme://…`) stays text for `pyarrow.fs`; anything else is a local path."""
    from gem_graph.run.corpus import is_uri

    return value if is_uri(value) else Path(value)


def handle(args: argparse.Namespace) -> int:
    """Run a corpus into RUN_DIR, print the summary; see the subcommand's help for codes."""
    from rich.console import Console

    from gem_graph.run.corpus import CorpusError, count_corpus, read_corpus

    settings = settings_from_args(args, cli_defaults=True).settings
    run = settings.run
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"{args.output} exists and is not a folder")
    try:
        items = read_corpus(args.input, text_field=run.text_field, id_field=run.id_field)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    total = count_corpus(args.input)
    if total == 0:
        raise UsageError(
            f"{args.input} holds no documents (an empty file, or a folder without .txt/.md "
            "files); nothing to run"
        )
    from gem_graph.run.endpoint import missing_key_hint

    if hint := missing_key_hint(settings.model.base_url):
        raise UsageError(hint)
    if finished := _finished_before(args.output, settings, args.force_new_settings):
        print(f"resuming {args.output}: skipping {finished} finished document(s)", file=sys.stderr)
    # The model stack is imported only once the arguments are known to be usable.
    from gem_graph.llm import aclose_chat_model, make_chat_model
    from gem_graph.run.engine import engine_of, require_ray
    from gem_graph.run.report import render_summary
    from gem_graph.run.runner import (
        EndpointUnreachable,
        RunError,
        RunOptions,
        RunSummary,
        SettingsMismatch,
        run_corpus,
    )
    from gem_graph.run.store import StoreError

    if total is not None and run.limit is not None:
        total = min(total, run.limit)
    options = RunOptions(
        run_dir=args.output,
        force_new_settings=args.force_new_settings,
        progress=not args.quiet,
        total=total,
        command=["gem-graph", *sys.argv[1:]],
    )
    try:
        if engine_of(settings) == "ray":
            require_ray()  # before anything starts: one line with the install hint
        llm = make_chat_model(settings.model)

        async def run_then_close() -> RunSummary:
            try:
                return await run_corpus(items, llm=llm, settings=settings, options=options)
            finally:
                await aclose_chat_model(llm)

        result = asyncio.run(run_then_close())
    except EndpointUnreachable as exc:
        print(f"gem-graph: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (SettingsMismatch, RunError, StoreError, CorpusError) as exc:
        raise UsageError(str(exc)) from None
    Console(soft_wrap=False).print(render_summary(result.summary))
    if result.stopped_reason:
        print(f"gem-graph: error: {result.stopped_reason}", file=sys.stderr)
        return EXIT_FAILED
    if result.failed:
        print(
            f"gem-graph: {result.failed} document(s) failed on the model transport; "
            "re-run the same command to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _finished_before(run_dir: Path, settings: Settings, forced: bool) -> int:
    """Documents an earlier session of `run_dir` finished that this run will skip (0 for a
    new run folder, or one the run will refuse for its other settings)."""
    from gem_graph.run.session import output_fingerprint
    from gem_graph.run.store import STORE_FILE, RunStore, StoreError

    if not (run_dir / STORE_FILE).is_file():
        return 0
    current, _ = output_fingerprint(settings)
    try:
        with RunStore(run_dir) as store:
            if store.get_meta("fingerprint") not in (None, current) and not forced:
                return 0  # the run stops on the settings mismatch, and says so
            return len(store.finished_ids())
    except StoreError:
        return 0  # the run itself reports an unusable store
