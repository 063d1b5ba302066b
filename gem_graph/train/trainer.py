"""`train_synthesizer`: TRL's `SFTTrainer` on the distilled pairs, then the saved output.

torch, datasets and trl are imported inside the functions, so importing this module works
without the `train` extra.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from gem_graph.train.card import model_card
from gem_graph.train.config import Say, TrainConfig, TrainResult
from gem_graph.train.data import load_data_dir
from gem_graph.train.model import (
    ensure_chat_template,
    load_model,
    load_tokenizer,
    lora_config,
    require_extra,
    sync_special_tokens,
    use_bf16,
    warn_about_context,
    warn_about_hardware,
)

# The package's logger, the name progress was logged under before the package was split.
_LOG = logging.getLogger("gem_graph.train")


def train_synthesizer(
    data_dir: Path, config: TrainConfig, out_dir: Path, *, say: Say | None = None
) -> TrainResult:
    """Fine-tune `config.base_model` on DATA_DIR and write the model to `out_dir`."""
    speak: Say = say or _LOG.info
    train_rows, validation_rows = load_data_dir(data_dir)
    require_extra()
    started = time.monotonic()

    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    bf16 = use_bf16(config.precision)
    warn_about_hardware(config.base_model, speak)
    tokenizer = load_tokenizer(config.base_model)
    added = ensure_chat_template(tokenizer, speak)
    model = load_model(config.base_model, bf16)
    sync_special_tokens(model, tokenizer, added)
    warn_about_context(model, config.max_length, speak)

    checkpoints = out_dir / "checkpoints"
    has_validation = bool(validation_rows)
    args = SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=config.effective_learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # below 1, transformers reads a ratio of all steps
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=bf16,
        fp16=False,
        max_length=config.max_length,
        completion_only_loss=True,
        packing=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch" if config.save_checkpoints else "no",
        save_total_limit=1,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=config.seed,
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(validation_rows) if has_validation else None,
        processing_class=tokenizer,
        peft_config=lora_config(config, added) if config.lora else None,
    )
    prepared: Any = trainer.train_dataset
    truncated = _count_truncated(prepared, config.max_length)
    dropped = len(train_rows) - len(prepared)
    if truncated or dropped:
        speak(
            f"warning: of {len(train_rows)} training examples, {truncated} are longer than "
            f"max_length={config.max_length} tokens and lose their end, and {dropped} have "
            "no target left at all; raise --max-length"
        )
    resume = config.resume and checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)

    eval_loss = None
    if has_validation:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir, merged_dir = _save(trainer, tokenizer, out_dir, lora=config.lora)

    history: list[dict[str, Any]] = list(trainer.state.log_history)
    losses = [float(entry["loss"]) for entry in history if "loss" in entry]
    result = TrainResult(
        out_dir=out_dir,
        merged_dir=merged_dir,
        adapter_dir=adapter_dir,
        train_examples=len(train_rows),
        validation_examples=len(validation_rows),
        truncated_examples=truncated,
        added_tokens=len(added),
        steps=int(trainer.state.global_step),
        first_loss=losses[0] if losses else None,
        final_loss=losses[-1] if losses else None,
        eval_loss=eval_loss,
        seconds=round(time.monotonic() - started, 1),
    )
    (out_dir / "log_history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    (out_dir / "train_config.json").write_text(
        json.dumps(
            {
                "config": config.model_dump(),
                "learning_rate": config.effective_learning_rate,
                "data_dir": str(data_dir),
                "result": result.model_dump(mode="json"),
                "versions": _versions(),
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    (out_dir / "README.md").write_text(model_card(config, result), encoding="utf-8")
    speak(f"trained {result.steps} steps in {result.seconds}s; model in {merged_dir}")
    return result


def _count_truncated(dataset: Any, max_length: int) -> int:
    """Examples that reached `max_length` after tokenization, i.e. were cut."""
    if dataset is None or "input_ids" not in dataset.column_names:
        return 0
    return sum(1 for ids in dataset["input_ids"] if len(ids) >= max_length)


def _save(trainer: Any, tokenizer: Any, out_dir: Path, *, lora: bool) -> tuple[Path | None, Path]:
    """Write the adapter (LoRA) and a merged, standalone model with its tokenizer."""
    merged_dir = out_dir / "merged"
    if not lora:
        trainer.save_model(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
        return None, merged_dir
    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
    return adapter_dir, merged_dir


def _versions() -> dict[str, str]:
    """Versions of the training libraries, recorded in train_config.json."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
