"""`gem-graph train-synthesizer`: the options, the one-line errors and the progress lines.

The training itself is `gem_graph.train.train_synthesizer`; this module only parses the
command line, reports on stderr and returns the exit code. `python -m gem_graph.cli.train`
runs the same command, e.g. under `accelerate launch` for several GPUs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from gem_graph.cli import EXIT_OK, EXIT_USAGE
from gem_graph.train import (
    FULL_LEARNING_RATE,
    LORA_LEARNING_RATE,
    TrainConfig,
    TrainError,
    train_synthesizer,
)


def _say(message: str) -> None:
    print(f"gem-graph train: {message}", file=sys.stderr)


def train_main(
    data_dir: Path,
    *,
    base_model: str,
    out_dir: Path,
    lora: bool = True,
    learning_rate: float | None = None,
    epochs: float = 2,
    max_length: int = 32768,
    max_steps: int | None = None,
    batch_size: int = 1,
    gradient_accumulation_steps: int = 8,
    gradient_checkpointing: bool = True,
    warmup_ratio: float = 0.1,
    lr_scheduler: str = "cosine",
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    precision: Literal["auto", "bf16", "fp32"] = "auto",
    logging_steps: int = 10,
    save_checkpoints: bool = True,
    resume: bool = False,
    seed: int = 42,
) -> int:
    """`gem-graph train-synthesizer`: train, print problems as one line, return the exit code
    (0 done, 2 a usage problem such as a missing extra or bad data). Progress and warnings
    go to stderr."""
    try:
        config = TrainConfig(
            base_model=base_model,
            lora=lora,
            learning_rate=learning_rate,
            epochs=epochs,
            max_length=max_length,
            max_steps=max_steps,
            batch_size=batch_size,
            gradient_accumulation_steps=gradient_accumulation_steps,
            gradient_checkpointing=gradient_checkpointing,
            warmup_ratio=warmup_ratio,
            lr_scheduler=lr_scheduler,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            precision=precision,
            logging_steps=logging_steps,
            save_checkpoints=save_checkpoints,
            resume=resume,
            seed=seed,
        )
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


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The `train-synthesizer` options (also for `python -m gem_graph.cli.train`)."""
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="output of `distill`")
    parser.add_argument("--base-model", required=True, metavar="PATH_OR_NAME")
    parser.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, metavar="OUT")
    parser.add_argument(
        "--full", dest="lora", action="store_false", help="full fine-tuning instead of LoRA"
    )
    parser.add_argument(
        "--lr",
        "--learning-rate",
        dest="learning_rate",
        type=float,
        help=f"default {LORA_LEARNING_RATE:g} (LoRA) or {FULL_LEARNING_RATE:g} (--full)",
    )
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-length", type=int, default=32768)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=1, help="per device")
    parser.add_argument("--grad-accum", dest="gradient_accumulation_steps", type=int, default=8)
    parser.add_argument(
        "--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false"
    )
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--lr-scheduler", default="cosine")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument(
        "--no-checkpoints", dest="save_checkpoints", action="store_false", help="save no epochs"
    )
    parser.add_argument("--resume", action="store_true", help="resume from OUT/checkpoints")
    parser.add_argument("--seed", type=int, default=42)


_ARGUMENT_NAMES = (
    "lora",
    "learning_rate",
    "epochs",
    "max_length",
    "max_steps",
    "batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "warmup_ratio",
    "lr_scheduler",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "precision",
    "logging_steps",
    "save_checkpoints",
    "resume",
    "seed",
)


def run_from_args(args: argparse.Namespace) -> int:
    """Run `train_main` with the options parsed by `add_train_arguments`."""
    options = {name: getattr(args, name) for name in _ARGUMENT_NAMES}
    return train_main(args.data_dir, base_model=args.base_model, out_dir=args.out_dir, **options)


def main(argv: list[str] | None = None) -> int:
    """`python -m gem_graph.cli.train ...`, e.g. under `accelerate launch` for several GPUs."""
    parser = argparse.ArgumentParser(
        prog="gem-graph train-synthesizer",
        description="Fine-tune a Trajectory Synthesizer on the output of `gem-graph distill`.",
    )
    add_train_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
