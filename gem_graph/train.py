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
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TRAIN_FILE = "train.openai.jsonl"
VALIDATION_FILE = "validation.openai.jsonl"
EXTRA_HINT = "training needs the optional extra: install gem-graph[train]"
LORA_LEARNING_RATE = 1e-4
FULL_LEARNING_RATE = 5e-6
"""The paper's full-SFT learning rate (LLaMA-Factory, Qwen3, 2 epochs)."""
LARGE_MODEL_PARAMS = 1_000_000_000
"""Above this many parameters, training without a GPU earns a warning."""
SERVED_NAME = "gem-synth"

# ChatML, set on tokenizers that come without a chat template (base models).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")

Say = Callable[[str], None]
"""Where training reports progress and warnings; the default is this module's logger."""

_LOG = logging.getLogger(__name__)


class TrainError(Exception):
    """A problem the user can fix (missing extra, missing or bad data); printed as one line."""


class TrainConfig(BaseModel):
    """Every training choice, with the defaults of the recipe; `learning_rate=None` picks
    1e-4 for LoRA and the paper's 5e-6 for full fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(min_length=1)
    """A local directory or a Hugging Face model id (e.g. Qwen/Qwen3-8B)."""
    lora: bool = True
    learning_rate: float | None = Field(default=None, gt=0)
    epochs: float = Field(default=2, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides `epochs`); for smoke runs."""
    max_length: int = Field(default=32768, ge=16)
    """Tokens per example; longer examples are truncated at the end."""
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    batch_size: int = Field(default=1, ge=1)
    """Examples per device per step."""
    gradient_accumulation_steps: int = Field(default=8, ge=1)
    gradient_checkpointing: bool = True
    """Trades about 20% speed for far less activation memory; needed at long contexts."""
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: str | list[str] = "all-linear"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto`: bf16 on a GPU that supports it, fp32 elsewhere (the CPU included)."""
    logging_steps: int = Field(default=10, ge=1)
    save_checkpoints: bool = True
    """Keep the last epoch checkpoint in OUT/checkpoints, so a long run can resume."""
    resume: bool = False
    """Resume from the last checkpoint in OUT/checkpoints."""
    seed: int = 42

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


# ---- data ----------------------------------------------------------------------------------


def to_prompt_completion(record: Any, where: str) -> dict[str, list[dict[str, str]]]:
    """Split one `{"messages": [...]}` record into TRL's conversational prompt-completion
    form: everything before the last message is the prompt, the last (assistant) message is
    the completion. Raises `TrainError` naming `where` when the record is malformed."""
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise TrainError(f"{where}: expected an object with a 'messages' list")
    messages: list[dict[str, str]] = []
    for index, message in enumerate(record["messages"]):
        if (
            not isinstance(message, dict)
            or message.get("role") not in {"system", "user", "assistant"}
            or not isinstance(message.get("content"), str)
        ):
            raise TrainError(
                f"{where}: message {index} must have role system/user/assistant and string content"
            )
        messages.append({"role": message["role"], "content": message["content"]})
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise TrainError(f"{where}: the last message must be the assistant's target document")
    if not any(message["role"] == "user" for message in messages[:-1]):
        raise TrainError(f"{where}: no user message holds the source text")
    if not messages[-1]["content"].strip():
        raise TrainError(f"{where}: the assistant's target document is empty")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def load_examples(path: Path) -> list[dict[str, list[dict[str, str]]]]:
    """Read an openai-format JSONL file into prompt-completion examples (blank lines skipped)."""
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainError(f"{where}: not JSON ({exc.msg})") from None
            examples.append(to_prompt_completion(record, where))
    return examples


def load_data_dir(
    data_dir: Path,
) -> tuple[list[dict[str, list[dict[str, str]]]], list[dict[str, list[dict[str, str]]]]]:
    """The training and validation examples of a distilled DATA_DIR; validation may be empty."""
    if not data_dir.is_dir():
        raise TrainError(f"{data_dir} is not a directory (make one with `gem-graph distill`)")
    train_path = data_dir / TRAIN_FILE
    if not train_path.is_file():
        raise TrainError(
            f"{train_path} is missing: DATA_DIR must be the output of "
            "`gem-graph distill RUN_DIR -o DATA_DIR`"
        )
    train = load_examples(train_path)
    if not train:
        raise TrainError(f"{train_path} holds no examples: distill a run with kept records first")
    validation_path = data_dir / VALIDATION_FILE
    validation = load_examples(validation_path) if validation_path.is_file() else []
    return train, validation


# ---- model ---------------------------------------------------------------------------------


def require_extra() -> None:
    """Fail with one clear line when the `train` extra is not installed."""
    try:
        import datasets  # noqa: F401
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise TrainError(f"{EXTRA_HINT}; missing: {exc.name}") from None


def _use_bf16(precision: str) -> bool:
    import torch

    if precision == "fp32":
        return False
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not gpu_bf16:
        raise TrainError("--precision bf16 needs a GPU with bf16 support; use auto or fp32")
    return gpu_bf16


def _parameter_count(base_model: str) -> int | None:
    """Parameters of the model, counted on the meta device (no weights loaded); None if the
    config cannot be built that way."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(base_model)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
        return sum(parameter.numel() for parameter in skeleton.parameters())
    except Exception:
        return None


def _warn_about_hardware(base_model: str, say: Say) -> None:
    import torch

    if torch.cuda.is_available():
        return
    count = _parameter_count(base_model)
    if count is not None and count > LARGE_MODEL_PARAMS:
        say(
            f"warning: no GPU found; training a {count / 1e9:.1f}B-parameter model on the CPU "
            "needs a lot of memory and will be extremely slow. Use a machine with a GPU."
        )


def _load_tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base_model)
    except OSError as exc:
        raise TrainError(f"cannot load the tokenizer of {base_model!r}: {exc}") from None


def _ensure_chat_template(tokenizer: Any, say: Say) -> list[int]:
    """Give a template-less tokenizer ChatML, adding its two tokens when the vocabulary lacks
    them. Returns the ids of added tokens (the embeddings must grow and be trained)."""
    if tokenizer.chat_template:
        return []
    say("the tokenizer has no chat template; using ChatML (<|im_start|> ... <|im_end|>)")
    vocab = tokenizer.get_vocab()
    missing = [token for token in CHATML_TOKENS if token not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    tokenizer.chat_template = CHATML_TEMPLATE
    # The end of an assistant turn is where generation must stop.
    tokenizer.eos_token = "<|im_end|>"
    return [int(tokenizer.convert_tokens_to_ids(token)) for token in missing]


def _load_model(base_model: str, bf16: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            base_model, dtype=torch.bfloat16 if bf16 else torch.float32
        )
    except OSError as exc:
        raise TrainError(f"cannot load the model {base_model!r}: {exc}") from None


def _sync_special_tokens(model: Any, tokenizer: Any, added: list[int]) -> None:
    """Make the model agree with the tokenizer: vocabulary size, end and padding tokens."""
    if added:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for config in (model.config.get_text_config(), model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id


def _lora_config(config: TrainConfig, added: list[int]) -> Any:
    from peft import LoraConfig

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )
    if added:
        # New ChatML tokens start as random rows: train them, and the output layer with them.
        lora.trainable_token_indices = {"embed_tokens": added}
        lora.modules_to_save = ["lm_head"]
    return lora


# ---- training ------------------------------------------------------------------------------


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

    bf16 = _use_bf16(config.precision)
    _warn_about_hardware(config.base_model, speak)
    tokenizer = _load_tokenizer(config.base_model)
    added = _ensure_chat_template(tokenizer, speak)
    model = _load_model(config.base_model, bf16)
    _sync_special_tokens(model, tokenizer, added)
    _warn_about_context(model, config.max_length, speak)

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
        peft_config=_lora_config(config, added) if config.lora else None,
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


def _warn_about_context(model: Any, max_length: int, say: Say) -> None:
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if isinstance(limit, int) and limit < max_length:
        say(
            f"warning: max_length={max_length} exceeds the model's context of {limit} tokens; "
            "pass --max-length to stay within it"
        )


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
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# ---- output card ---------------------------------------------------------------------------


def model_card(config: TrainConfig, result: TrainResult) -> str:
    """OUT/README.md: what was trained, and how to serve it for synthesizer mode."""
    out = result.out_dir
    method = (
        f"LoRA (r={config.lora_r}, alpha={config.lora_alpha}, dropout={config.lora_dropout}, "
        f"targets={config.lora_target_modules}), merged into the base weights"
        if config.lora
        else "full fine-tuning"
    )

    def loss(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    adapter = ""
    if result.adapter_dir is not None and not result.added_tokens:
        # With added tokens the base vocabulary no longer fits; only the merged model serves.
        adapter = (
            f"\nvLLM can also serve the adapter on top of the base model:\n\n"
            f"```bash\nvllm serve {config.base_model} --enable-lora "
            f"--max-lora-rank {config.lora_r} "
            f"--lora-modules {SERVED_NAME}={result.adapter_dir}\n```\n"
        )
    return f"""# Trajectory Synthesizer ({SERVED_NAME})

Fine-tuned by `gem-graph train-synthesizer` to turn a procedural text into a whole
tool-use episode in one generation: tools, executable environment, scenario and dialogue.

- Base model: `{config.base_model}`
- Method: {method}
- Learning rate {config.effective_learning_rate:g}, {config.lr_scheduler} schedule, warm-up
  ratio {config.warmup_ratio}, {config.epochs:g} epochs, max length {config.max_length},
  batch {config.batch_size} x {config.gradient_accumulation_steps} accumulation
- Examples: {result.train_examples} train, {result.validation_examples} validation
  ({result.truncated_examples} truncated)
- Steps: {result.steps}; training loss {loss(result.first_loss)} -> {loss(result.final_loss)};
  validation loss {loss(result.eval_loss)}

## Layout

- `merged/`: the standalone model and tokenizer (with its chat template); serve this one.
- `adapter/`: the LoRA adapter alone (LoRA runs only).
- `log_history.json`, `train_config.json`: the trainer's log and every setting used.
- `checkpoints/`: the last epoch checkpoint, for `--resume`; safe to delete.

## Serve it

```bash
vllm serve {out / "merged"} --served-model-name {SERVED_NAME} --max-model-len {config.max_length}
```
{adapter}
or load it with transformers:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{out / "merged"}")
model = AutoModelForCausalLM.from_pretrained("{out / "merged"}", dtype="auto")
```

## Use it in synthesizer mode

```bash
gem-graph run corpus.jsonl -o runs/synth --mode synthesizer \\
    --base-url http://127.0.0.1:8000/v1 --model {SERVED_NAME}
```

Every generation is still parsed, executed in the sandbox and verified, so the model's
mistakes become rejects, not data.
"""
