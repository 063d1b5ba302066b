"""The base model made ready to train: the extra, precision, tokenizer, chat template, LoRA.

torch, transformers, peft and friends are imported inside the functions, so importing this
module works without the `train` extra.
"""

from __future__ import annotations

from typing import Any

from gem_graph.train.config import Say, TrainConfig, TrainError

EXTRA_HINT = "training needs the optional extra: install gem-graph[train]"
LARGE_MODEL_PARAMS = 1_000_000_000
"""Above this many parameters, training without a GPU earns a warning."""

# ChatML, set on tokenizers that come without a chat template (base models).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


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


def use_bf16(precision: str) -> bool:
    """Whether to train in bf16 for `precision` (auto, bf16 or fp32) on this machine."""
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


def warn_about_hardware(base_model: str, say: Say) -> None:
    """Warn before a large model is trained without a GPU: slow, and hungry for memory."""
    import torch

    if torch.cuda.is_available():
        return
    count = _parameter_count(base_model)
    if count is not None and count > LARGE_MODEL_PARAMS:
        say(
            f"warning: no GPU found; training a {count / 1e9:.1f}B-parameter model on the CPU "
            "needs a lot of memory and will be extremely slow. Use a machine with a GPU."
        )


def warn_about_context(model: Any, max_length: int, say: Say) -> None:
    """Warn when `max_length` exceeds the context the model was built for."""
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if isinstance(limit, int) and limit < max_length:
        say(
            f"warning: max_length={max_length} exceeds the model's context of {limit} tokens; "
            "pass --max-length to stay within it"
        )


def load_tokenizer(base_model: str) -> Any:
    """The base model's tokenizer; a `TrainError` when it cannot be loaded."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base_model)
    except OSError as exc:
        raise TrainError(f"cannot load the tokenizer of {base_model!r}: {exc}") from None


def ensure_chat_template(tokenizer: Any, say: Say) -> list[int]:
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


def load_model(base_model: str, bf16: bool) -> Any:
    """The base model's weights, in bf16 or fp32; a `TrainError` when they cannot be loaded."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            base_model, dtype=torch.bfloat16 if bf16 else torch.float32
        )
    except OSError as exc:
        raise TrainError(f"cannot load the model {base_model!r}: {exc}") from None


def sync_special_tokens(model: Any, tokenizer: Any, added: list[int]) -> None:
    """Make the model agree with the tokenizer: vocabulary size, end and padding tokens."""
    if added:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for config in (model.config.get_text_config(), model.generation_config):
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id


def lora_config(config: TrainConfig, added: list[int]) -> Any:
    """The peft `LoraConfig` of the run; added tokens and the output layer train in full."""
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
