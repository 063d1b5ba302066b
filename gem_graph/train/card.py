"""OUT/README.md, the model card: what was trained, and how to serve it for synthesizer mode."""

from __future__ import annotations

from gem_graph.train.config import TrainConfig, TrainResult

SERVED_NAME = "gem-synth"


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
