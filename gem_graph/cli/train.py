"""`gem-graph train-synthesizer`: the options, the one-line errors and the progress lines.

The training itself is `gem_graph.train.train_synthesizer`; this module only parses the
command line (every option derived from `TrainConfig`), reports on stderr and returns the
exit code. `python -m gem_graph.cli.train` runs the same command, e.g. under
`accelerate launch` for several GPUs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gem_graph.cli.common import EXIT_OK, EXIT_USAGE, Subparsers
from gem_graph.cli.flags import Flag, add_flags, flag_values
from gem_graph.train import (
    FULL_LEARNING_RATE,
    LORA_LEARNING_RATE,
    TrainConfig,
    TrainError,
    train_synthesizer,
)

TRAIN_FLAGS = (
    Flag("--base-model", "base_model", metavar="PATH_OR_NAME", required=True),
    Flag("--full", "lora", sets=False, help="full fine-tuning instead of LoRA"),
    Flag(
        "--lr",
        "learning_rate",
        aliases=("--learning-rate",),
        help=f"default {LORA_LEARNING_RATE:g} (LoRA) or {FULL_LEARNING_RATE:g} (--full)",
    ),
    Flag("--epochs", "epochs"),
    Flag("--max-length", "max_length"),
    Flag("--max-steps", "max_steps"),
    Flag("--batch-size", "batch_size"),
    Flag("--grad-accum", "gradient_accumulation_steps"),
    Flag("--no-gradient-checkpointing", "gradient_checkpointing", sets=False),
    Flag("--warmup-ratio", "warmup_ratio"),
    Flag("--lr-scheduler", "lr_scheduler"),
    Flag("--lora-r", "lora_r"),
    Flag("--lora-alpha", "lora_alpha"),
    Flag("--lora-dropout", "lora_dropout"),
    Flag("--precision", "precision"),
    Flag("--logging-steps", "logging_steps"),
    Flag("--no-checkpoints", "save_checkpoints", sets=False, help="save no epoch checkpoints"),
    Flag("--resume", "resume", sets=True),
    Flag("--seed", "seed"),
)


def _say(message: str) -> None:
    print(f"gem-graph train: {message}", file=sys.stderr)


def train_command(data_dir: Path, out_dir: Path, values: Mapping[str, Any]) -> int:
    """Validate `values` as a `TrainConfig`, train, print problems as one line; return the
    exit code (0 done, 2 a usage problem such as a missing extra or bad data)."""
    try:
        config = TrainConfig.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        print(f"gem-graph: error: {field}: {first['msg']}", file=sys.stderr)
        return EXIT_USAGE
    try:
        train_synthesizer(data_dir, config, out_dir, say=_say)
    except TrainError as exc:
        print(f"gem-graph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train-synthesizer` options (also for `python -m gem_graph.cli.train`)."""
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="output of `distill`")
    parser.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, metavar="OUT")
    add_flags(parser, TrainConfig, TRAIN_FLAGS)


def register(subparsers: Subparsers) -> None:
    """Register `gem-graph train-synthesizer DATA_DIR --base-model M -o OUT`."""
    parser = subparsers.add_parser(
        "train-synthesizer",
        help="fine-tune a Trajectory Synthesizer on `gem-graph distill` output "
        "(needs gem-graph[train])",
    )
    add_arguments(parser)
    parser.set_defaults(command=handle)


def handle(args: argparse.Namespace) -> int:
    """Train with the parsed options."""
    return train_command(args.data_dir, args.out_dir, flag_values(args, TRAIN_FLAGS))


def main(argv: list[str] | None = None) -> int:
    """`python -m gem_graph.cli.train ...`, e.g. under `accelerate launch` for several GPUs."""
    parser = argparse.ArgumentParser(
        prog="gem-graph train-synthesizer",
        description="Fine-tune a Trajectory Synthesizer on the output of `gem-graph distill`.",
    )
    add_arguments(parser)
    return handle(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
