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
from typing import Any, TypeAlias, get_args

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
    add_demo(subparsers)
    add_run(subparsers)
    add_stats(subparsers)
    add_export(subparsers)
    add_verify(subparsers)
    add_distill(subparsers)
    add_train_synthesizer(subparsers)
    add_compare(subparsers)
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


# ---- demo ---------------------------------------------------------------------------------


def add_demo(subparsers: Subparsers) -> None:
    """Register `gem-graph demo [-o RUN_DIR]`."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline offline on the bundled corpus (scripted model replies)",
        description="Run the full pipeline (sandbox execution included) on a bundled corpus "
        "of eight texts with SCRIPTED, hand-written model replies: no model is called. "
        "Writes a run folder and prints its summary.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/demo"), metavar="RUN_DIR")
    parser.add_argument("--tier", choices=get_args(SandboxTier), default=None)
    parser.set_defaults(command=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Run the offline demo, print its summary and how to go further; 0 when complete."""
    from gem_graph.demo import (
        REAL_MODEL_HINT,
        SANDBOX_HINT,
        SCRIPTED_NOTICE,
        demo_settings,
    )
    from gem_graph.demo import run_demo as run_demo_corpus
    from gem_graph.run.report import summary_text
    from gem_graph.run.runner import RunError

    print(SCRIPTED_NOTICE, file=sys.stderr)
    try:
        result = asyncio.run(
            run_demo_corpus(
                args.output, settings=demo_settings(args.tier), progress=sys.stderr.isatty()
            )
        )
    except RunError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        if "sandbox" in str(exc):
            print(SANDBOX_HINT, file=sys.stderr)
        return EXIT_FAILED
    print(summary_text(result.summary))
    print(SCRIPTED_NOTICE)
    print(f"Run folder: {args.output}  (try: gem-graph export {args.output} --format openai)")
    print(REAL_MODEL_HINT)
    return EXIT_OK if result.complete else EXIT_FAILED


# ---- export -------------------------------------------------------------------------------


def add_export(subparsers: Subparsers) -> None:
    """Register `gem-graph export RUN_DIR --format F [-o FILE]`."""
    from gem_graph.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="write a run's kept trajectories as training or evaluation data",
        description="openai: {messages, tools} per line (TRL, HF datasets); sharegpt: "
        "LLaMA-Factory's tool format; hermes: text in the Hermes tool template; tasks: "
        "instruction, environment, scenario and expected final state for agent evaluation.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSONL file to write (default: standard output)",
    )
    parser.set_defaults(command=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export a run; 0 all records written, 1 some skipped (reasons on stderr), 2 unusable."""
    from gem_graph.export import UnusableRun, export_run

    try:
        destination = sys.stdout if args.output is None else args.output
        done = export_run(args.run_dir, args.format, destination)
    except UnusableRun as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    for reason in done.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    where = args.output if args.output is not None else "stdout"
    print(f"wrote {done.written} {args.format} row(s) to {where}", file=sys.stderr)
    return EXIT_FAILED if done.skipped else EXIT_OK


# ---- distill, train-synthesizer, compare --------------------------------------------------


def add_distill(subparsers: Subparsers) -> None:
    """Register `gem-graph distill RUN_DIR -o DIR`."""
    parser = subparsers.add_parser(
        "distill",
        help="build the Trajectory Synthesizer's training set from a run's kept records",
        description="Pairs of (fixed instruction + source text) → one target document with "
        "tools, environment and dialogue; train/validation split by source document; "
        "OpenAI-messages and ShareGPT JSONL plus a dataset card.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="the run's input, for runs whose store predates stored texts",
    )
    parser.set_defaults(command=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Distill, print a short summary; 0 when at least one example was written."""
    from gem_graph.run.corpus import CorpusError
    from gem_graph.run.store import StoreError
    from gem_graph.synthesizer.distill import distill_run

    try:
        result = distill_run(
            args.run_dir,
            args.output,
            val_fraction=args.val_fraction,
            seed=args.seed,
            corpus=args.corpus,
        )
    except (OSError, ValueError, StoreError, CorpusError) as exc:
        print(f"gem-graph distill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    counts, documents = result.counts, result.documents
    print(
        f"wrote {counts['train']} train and {counts['validation']} validation examples "
        f"({documents['train']} + {documents['validation']} source documents) to "
        f"{result.out_dir}"
    )
    for reason, count in sorted(result.skipped.items()):
        print(f"  left out {count}: {reason}")
    total = sum(counts.values())
    if total == 0 and result.skipped.get("source text unavailable"):
        print(
            "  this run's store holds no source texts (it predates stored texts): pass the "
            "run's corpus with --corpus",
            file=sys.stderr,
        )
    return EXIT_OK if total else EXIT_FAILED


def add_train_synthesizer(subparsers: Subparsers) -> None:
    """Register `gem-graph train-synthesizer DATA_DIR --base-model M -o OUT`."""
    from gem_graph.cli.train import add_train_arguments, run_from_args

    parser = subparsers.add_parser(
        "train-synthesizer",
        help="fine-tune a Trajectory Synthesizer on `gem-graph distill` output "
        "(needs gem-graph[train])",
    )
    add_train_arguments(parser)
    parser.set_defaults(command=run_from_args)


def add_compare(subparsers: Subparsers) -> None:
    """Register `gem-graph compare RUN_A RUN_B`."""
    parser = subparsers.add_parser(
        "compare",
        help="side-by-side table of two runs on the same texts (e.g. pipeline vs synthesizer)",
    )
    parser.add_argument("run_a", type=Path, metavar="RUN_A")
    parser.add_argument("run_b", type=Path, metavar="RUN_B")
    parser.set_defaults(command=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison table of two run folders; 2 when one cannot be read."""
    from rich.console import Console

    from gem_graph.compare import compare_runs, load_run_summary
    from gem_graph.run.store import StoreError

    console = Console()
    try:
        a, b = load_run_summary(args.run_a), load_run_summary(args.run_b)
    except StoreError as exc:
        Console(stderr=True).print(f"gem-graph compare: {exc}")
        return EXIT_USAGE
    console.print(compare_runs(a, b).table())
    if a["documents"] != b["documents"]:
        console.print(
            f"[yellow]note:[/] the runs finished different numbers of documents "
            f"({a['documents']} vs {b['documents']}); compare runs over the same texts."
        )
    return EXIT_OK


# ---- run ----------------------------------------------------------------------------------


def add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `gem-graph run INPUT -o RUN_DIR`."""
    from gem_graph.settings import HttpClient, StructuredMethod

    parser = subparsers.add_parser(
        "run",
        help="synthesize trajectories from a corpus into a run folder (resumable)",
        description="Run every document of INPUT (JSONL, a folder of .txt/.md files, or "
        "Parquet) through the pipeline into RUN_DIR. Re-running the same command resumes: "
        "finished documents are skipped. The API key is read only from OPENAI_API_KEY. "
        "Exit 0 when every document was processed, 1 when the run stopped or some documents "
        "failed on the model transport (re-run to retry them), 2 on a usage error.",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="JSONL file, folder, or Parquet")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="RUN_DIR")
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE.toml",
        help="settings file shaped like Settings ([model], [attempts], [sandbox], "
        "[pipeline]) plus [run]; flags override it",
    )
    parser.add_argument("--text-field", default=None, help="JSONL/Parquet text field (text)")
    parser.add_argument("--id-field", default=None, help="JSONL/Parquet id field (id)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="model name (else GEM_MODEL or gpt-4o-mini)")
    model.add_argument("--base-url", default=None, help="server URL (else OPENAI_BASE_URL)")
    model.add_argument("--temperature", type=float, default=None)
    model.add_argument("--structured-method", choices=get_args(StructuredMethod), default=None)
    model.add_argument("--timeout", type=float, default=None, help="seconds per model request")
    model.add_argument(
        "--http-client",
        choices=get_args(HttpClient),
        default=None,
        help="the OpenAI SDK's HTTP transport (httpx); aiohttp needs less CPU per request",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--concurrency", type=int, default=None, help="documents in flight (8)")
    limits.add_argument("--limit", type=int, default=None, help="process at most N documents")
    limits.add_argument(
        "--workers",
        type=int,
        default=None,
        help="OS processes sharing the run and its --concurrency (1); use one per CPU core "
        "when the client, not the model server, is the bottleneck",
    )
    limits.add_argument("--rps", type=float, default=None, help="model requests per second")
    limits.add_argument(
        "--attempts",
        action="append",
        default=[],
        metavar="STAGE=N",
        help="validator-loop attempts for a stage, e.g. ground=4 (repeatable)",
    )
    limits.add_argument(
        "--segment-chars",
        type=int,
        default=None,
        help="split longer documents at paragraphs into segments of this size",
    )
    pipeline = parser.add_argument_group("pipeline")
    pipeline.add_argument(
        "--tier",
        choices=get_args(SandboxTier),
        default=None,
        help="sandbox isolation tier (default 'standard')",
    )
    pipeline.add_argument(
        "--allow-unsafe-none", action="store_true", help="permit --tier none (rlimits only)"
    )
    pipeline.add_argument(
        "--no-execute",
        action="store_true",
        help="do not implement tools as code nor replay calls in the sandbox",
    )
    pipeline.add_argument(
        "--mode",
        choices=("pipeline", "synthesizer"),
        default=None,
        help="pipeline: the multi-stage GEM graph (default); synthesizer: one model call per "
        "text writes tools, environment and dialogue, then the same checks and sandbox",
    )
    pipeline.add_argument("--no-refine", action="store_true", help="skip the refine stage")
    pipeline.add_argument("--no-judge", action="store_true", help="skip the LLM judge")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="LLM response cache (default RUN_DIR/llm_cache.sqlite)",
    )
    run.add_argument("--no-cache", action="store_true", help="do not cache model responses")
    run.add_argument(
        "--force-new-settings",
        action="store_true",
        help="continue RUN_DIR even though it was run with other output settings",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(command=run_run)


def _run_section(file_data: dict[str, Any]) -> dict[str, Any]:
    section = dict(file_data.get("run") or {})
    known = {
        "concurrency",
        "limit",
        "requests_per_second",
        "segment_chars",
        "max_segments",
        "cache",
        "text_field",
        "id_field",
        "failure_threshold",
        "workers",
    }
    unknown = set(section) - known
    if unknown:
        raise UsageError(
            f"settings file: unknown [run] option(s) {sorted(unknown)}; "
            f"expected some of {sorted(known)}"
        )
    return section


def _cli_transport_default() -> dict[str, Any]:
    """The command line owns its event loop, so it defaults to the aiohttp transport (about
    2 ms less CPU per model call) when aiohttp is installed; a settings file or
    `--http-client` still decides. The library default stays httpx."""
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        return {}
    return {"model": {"http_client": "aiohttp"}}


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that change `Settings`, shaped like it."""
    from gem_graph.run.config import ConfigError, parse_attempts

    model = {
        "name": args.model,
        "base_url": args.base_url,
        "temperature": args.temperature,
        "structured_method": args.structured_method,
        "timeout_s": args.timeout,
        "http_client": args.http_client,
    }
    sandbox: dict[str, Any] = {"tier": args.tier}
    if args.allow_unsafe_none:
        sandbox["allow_unsafe_none"] = True
    pipeline: dict[str, Any] = {}
    if args.mode is not None:
        pipeline["mode"] = args.mode
    if args.no_execute:
        pipeline["execute"] = False
    if args.no_refine:
        pipeline["refine"] = False
    if args.no_judge:
        pipeline["judge"] = False
    try:
        attempts = parse_attempts(args.attempts)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    overrides = {
        "model": {k: v for k, v in model.items() if v is not None},
        "sandbox": {k: v for k, v in sandbox.items() if v is not None},
        "pipeline": pipeline,
        "attempts": attempts,
    }
    return {k: v for k, v in overrides.items() if v}


def _pick(flag: Any, section: dict[str, Any], key: str, default: Any) -> Any:
    if flag is not None:
        return flag
    return section.get(key, default)


def run_run(args: argparse.Namespace) -> int:
    """Run a corpus into RUN_DIR, print the summary; see the subcommand's help for codes."""
    from rich.console import Console

    from gem_graph.run.config import ConfigError, build_settings, deep_merge, load_settings_file
    from gem_graph.run.corpus import CorpusError, count_corpus, read_corpus

    try:
        file_data = load_settings_file(args.settings) if args.settings else {}
        file_data = deep_merge(_cli_transport_default(), file_data)
        settings = build_settings(file_data, _settings_overrides(args))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    section = _run_section(file_data)
    text_field = _pick(args.text_field, section, "text_field", "text")
    id_field = _pick(args.id_field, section, "id_field", "id")
    limit = _pick(args.limit, section, "limit", None)
    concurrency = int(_pick(args.concurrency, section, "concurrency", 8))
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    workers = int(_pick(args.workers, section, "workers", 1))
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if limit is not None and limit < 0:
        raise UsageError("--limit must not be negative")
    cache_setting = section.get("cache", True)
    cache_path: Path | None
    if args.no_cache or cache_setting is False:
        cache_path = None
    elif args.cache is not None:
        cache_path = args.cache
    elif isinstance(cache_setting, str):
        cache_path = Path(cache_setting)
    else:
        cache_path = args.output / "llm_cache.sqlite"
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"{args.output} exists and is not a folder")

    try:
        items = read_corpus(args.input, text_field=text_field, id_field=id_field)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    # The model stack is imported only once the arguments are known to be usable.
    from gem_graph.llm import aclose_chat_model, make_chat_model
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

    total = count_corpus(args.input)
    if total is not None and limit is not None:
        total = min(total, limit)
    options = RunOptions(
        run_dir=args.output,
        concurrency=concurrency,
        limit=limit,
        requests_per_second=_pick(args.rps, section, "requests_per_second", None),
        force_new_settings=args.force_new_settings,
        progress=not args.quiet,
        cache_path=cache_path,
        segment_chars=_pick(args.segment_chars, section, "segment_chars", None),
        max_segments=int(section.get("max_segments", 25)),
        failure_threshold=int(section.get("failure_threshold", 5)),
        total=total,
        command=["gem-graph", *sys.argv[1:]],
        workers=workers,
    )
    try:
        if workers > 1:
            from gem_graph.run.workers import CorpusSource, run_corpus_workers

            source = CorpusSource(args.input, text_field=text_field, id_field=id_field)
            result = run_corpus_workers(source, settings=settings, options=options)
        else:
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


# ---- stats --------------------------------------------------------------------------------


def add_stats(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `gem-graph stats RUN_DIR`."""
    parser = subparsers.add_parser(
        "stats",
        help="print the summary of a run folder",
        description="Print the end-of-run summary (yield per stage, top reject reasons, "
        "usage, wall time, sandbox isolation) from a run folder's store.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(command=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    """Print the summary of RUN_DIR's store."""
    from rich.console import Console

    from gem_graph.run.report import render_summary
    from gem_graph.run.store import RunStore, StoreError

    try:
        with RunStore(args.run_dir) as store:
            summary = store.summary()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        Console(soft_wrap=False).print(render_summary(summary))
    return EXIT_OK


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
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print each problem readably (message index, code, the span and the evidence "
        "searched) instead of JSON lines",
    )
    parser.set_defaults(command=run_verify)


def run_verify(args: argparse.Namespace) -> int:
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
    sandbox = Settings().sandbox
    if args.tier is not None:
        sandbox = sandbox.model_copy(update={"tier": args.tier})
    if args.allow_unsafe_none:
        sandbox = sandbox.model_copy(update={"allow_unsafe_none": True})
    settings = Settings(sandbox=sandbox)

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
