"""Fine-tune a Trajectory Synthesizer on distilled pairs (the optional `gem-graph[train]`).

The input is what `gem-graph distill RUN_DIR -o DATA_DIR` writes: `train.openai.jsonl`
(and optionally `validation.openai.jsonl`), one `{"messages": [system?, user, assistant]}`
per line. Each conversation becomes a TRL prompt-completion example, so the loss falls on
the assistant's target document only. Training is TRL's `SFTTrainer`: LoRA (peft) by
default, full fine-tuning on request, with the paper's recipe otherwise (2 epochs, cosine
schedule, 10% warm-up, 32K context; full SFT at lr 5e-6).

The output directory holds a merged model that vLLM and transformers load directly
(`merged/`), the LoRA adapter when one was trained (`adapter/`), the log history, the
configuration and a README on how to serve the model for synthesizer mode.

torch, transformers, trl, peft and datasets are imported inside functions, so
`import gem_graph.train` works without the extra.

- `config`: `TrainConfig`, `TrainResult`, `TrainError` and the learning-rate defaults;
- `data`: the distilled JSONL as prompt-completion examples;
- `model`: the extra, precision, tokenizer and chat template, model loading, LoRA;
- `trainer`: `train_synthesizer`, the training run and what it saves;
- `card`: the model card (OUT/README.md) on how to serve the model.
"""

from __future__ import annotations

from gem_graph.train.card import SERVED_NAME, model_card
from gem_graph.train.config import (
    FULL_LEARNING_RATE,
    LORA_LEARNING_RATE,
    Say,
    TrainConfig,
    TrainError,
    TrainResult,
)
from gem_graph.train.data import (
    TRAIN_FILE,
    VALIDATION_FILE,
    load_data_dir,
    load_examples,
    to_prompt_completion,
)
from gem_graph.train.model import (
    CHATML_TEMPLATE,
    CHATML_TOKENS,
    EXTRA_HINT,
    LARGE_MODEL_PARAMS,
    require_extra,
)
from gem_graph.train.trainer import train_synthesizer

__all__ = [
    "CHATML_TEMPLATE",
    "CHATML_TOKENS",
    "EXTRA_HINT",
    "FULL_LEARNING_RATE",
    "LARGE_MODEL_PARAMS",
    "LORA_LEARNING_RATE",
    "SERVED_NAME",
    "TRAIN_FILE",
    "VALIDATION_FILE",
    "Say",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "load_data_dir",
    "load_examples",
    "model_card",
    "require_extra",
    "to_prompt_completion",
    "train_synthesizer",
]
