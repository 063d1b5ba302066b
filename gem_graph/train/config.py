"""What a training run is told (`TrainConfig`) and what it reports back (`TrainResult`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LORA_LEARNING_RATE = 1e-4
FULL_LEARNING_RATE = 5e-6
"""The paper's full-SFT learning rate (LLaMA-Factory, Qwen3, 2 epochs)."""

Say = Callable[[str], None]
"""Where training reports progress and warnings; the default is the `gem_graph.train` logger."""


class TrainError(Exception):
    """A problem the user can fix (missing extra, missing or bad data); printed as one line."""


class TrainConfig(BaseModel):
    """Every training choice, with the defaults of the recipe; `learning_rate=None` picks
    1e-4 for LoRA and the paper's 5e-6 for full fine-tuning."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    base_model: str = Field(min_length=1)
    """A local directory or a Hugging Face model id (e.g. Qwen/Qwen3-8B)."""
    lora: bool = True
    """Train a LoRA adapter (then merge it); False fine-tunes every weight."""
    learning_rate: float | None = Field(default=None, gt=0)
    epochs: float = Field(default=2, gt=0)
    """Passes over the training set."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides `epochs`); for smoke runs."""
    max_length: int = Field(default=32768, ge=16)
    """Tokens per example; longer examples are truncated at the end."""
    lr_scheduler: str = "cosine"
    """A transformers learning-rate schedule name."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up."""
    batch_size: int = Field(default=1, ge=1)
    """Examples per device per step."""
    gradient_accumulation_steps: int = Field(default=8, ge=1)
    """Steps whose gradients add up before each optimizer step."""
    gradient_checkpointing: bool = True
    """Trades about 20% speed for far less activation memory; needed at long contexts."""
    lora_r: int = Field(default=16, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(default=32, ge=1)
    """LoRA scaling numerator."""
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = "all-linear"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto`: bf16 on a GPU that supports it, fp32 elsewhere (the CPU included)."""
    logging_steps: int = Field(default=10, ge=1)
    """Log the loss every this many steps."""
    save_checkpoints: bool = True
    """Keep the last epoch checkpoint in OUT/checkpoints, so a long run can resume."""
    resume: bool = False
    """Resume from the last checkpoint in OUT/checkpoints."""
    seed: int = 42
    """Seed for data order and initialisation."""

    @property
    def effective_learning_rate(self) -> float:
        """The learning rate used: the explicit one, or the default for the method."""
        if self.learning_rate is not None:
            return self.learning_rate
        return LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE


class TrainResult(BaseModel):
    """Where the trained model lies and how training went."""

    out_dir: Path
    merged_dir: Path
    adapter_dir: Path | None
    train_examples: int
    validation_examples: int
    truncated_examples: int
    added_tokens: int
    """Tokens added to the vocabulary (ChatML for a template-less tokenizer)."""
    steps: int
    first_loss: float | None
    final_loss: float | None
    eval_loss: float | None
    seconds: float
