"""`gem-graph train-synthesizer` end to end on the CPU, with no downloads.

The "base model" is a 2-layer Llama with hidden size 64 built from a config, and its
tokenizer a byte-level BPE trained here on the examples. The training tests need the
`train` extra and are skipped without it; the data checks run everywhere.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from gem_graph.cli.train import EXIT_OK, EXIT_USAGE, main, train_command
from gem_graph.train import (
    CHATML_TEMPLATE,
    TRAIN_FILE,
    VALIDATION_FILE,
    TrainConfig,
)

HAVE_EXTRA = all(find_spec(name) for name in ("torch", "transformers", "trl", "peft", "datasets"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="gem-graph[train] is not installed")

INSTRUCTION = "Turn the following text into multi-turn tool-use trajectories."
TOPICS = ["library card", "parcel", "bike rental", "gym class", "museum ticket", "pharmacy order"]


def example(topic: str, *, system: bool = True) -> dict:
    """One distilled pair: a short how-to and a tagged target document about it."""
    name = topic.replace(" ", "_")
    target = (
        "<tools>\n"
        f'{{"type": "function", "function": {{"name": "get_{name}", "parameters": {{}}}}}}\n'
        "</tools>\n<policy>\n"
        f"A {topic} needs a member id.\n"
        "</policy>\n<messages>\n"
        f'{{"role": "user", "content": "I want my {topic}."}}\n'
        "</messages>"
    )
    messages = [
        {"role": "user", "content": f"How to get a {topic}: log in, then ask for the {topic}."},
        {"role": "assistant", "content": target},
    ]
    if system:
        messages.insert(0, {"role": "system", "content": INSTRUCTION})
    return {"messages": messages}


def write_data(data_dir: Path, rows: list[dict], validation: list[dict] | None = None) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / TRAIN_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    if validation is not None:
        (data_dir / VALIDATION_FILE).write_text(
            "".join(json.dumps(row) + "\n" for row in validation)
        )
    return data_dir


def all_text(rows: list[dict]) -> list[str]:
    return [message["content"] for row in rows for message in row["messages"]]


def build_base_model(where: Path, texts: list[str], *, chat_template: bool) -> Path:
    """Save a tiny random Llama and a locally trained tokenizer as a model directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>"] + (["<|im_start|>", "<|im_end|>"] if chat_template else [])
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        texts * 3,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", model_max_length=512
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.eos_token = "<|im_end|>"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def logged_losses(out_dir: Path) -> list[float]:
    history = json.loads((out_dir / "log_history.json").read_text())
    return [entry["loss"] for entry in history if "loss" in entry]


def assert_loss_went_down(out_dir: Path) -> None:
    losses = logged_losses(out_dir)
    assert len(losses) >= 10
    assert mean(losses[-3:]) < 0.8 * mean(losses[:3]), losses


def assert_saved_model_learned(out_dir: Path) -> None:
    """OUT/merged reloads with plain transformers, scores the targets as well as training
    ended (so the saved weights are the trained ones), and continues a chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = out_dir / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged).eval()

    target_losses = []
    for row in TRAIN_ROWS:
        prompt = tokenizer.apply_chat_template(
            row["messages"][:-1], add_generation_prompt=True, tokenize=False
        )
        whole = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        whole_ids = tokenizer(whole, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(prompt_ids) + whole_ids[len(prompt_ids) :]
        with torch.no_grad():
            output = model(input_ids=torch.tensor([whole_ids]), labels=torch.tensor([labels]))
        target_losses.append(float(output.loss))
    assert mean(target_losses) < 0.85 * mean(logged_losses(out_dir)[:3])

    inputs = tokenizer.apply_chat_template(
        TRAIN_ROWS[0]["messages"][:-1],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new_tokens) <= 8
    assert isinstance(tokenizer.decode(new_tokens), str)


def assert_adapter_merged_into(base: Path, merged: Path) -> None:
    """The LoRA deltas are folded into the attention weights, not left behind."""
    from safetensors.torch import load_file

    name = "model.layers.0.self_attn.q_proj.weight"
    before = load_file(base / "model.safetensors")[name]
    after = load_file(merged / "model.safetensors")[name]
    assert before.shape == after.shape
    assert (after - before).abs().max() > 1e-4


TRAIN_ROWS = [example(topic, system=index % 3 != 0) for index, topic in enumerate(TOPICS)]


@needs_extra
def test_lora_training_lowers_the_loss_and_saves_a_loadable_merged_model(tmp_path):
    """The default path: LoRA on a tokenizer without a chat template (ChatML is added)."""
    base = build_base_model(tmp_path / "base", all_text(TRAIN_ROWS), chat_template=False)
    data = write_data(tmp_path / "data", TRAIN_ROWS, validation=[example("tram pass")])
    out = tmp_path / "out"

    code = train_command(
        data,
        out,
        {
            "base_model": str(base),
            "learning_rate": 5e-3,
            "max_steps": 24,
            "max_length": 256,
            "batch_size": 2,
            "gradient_accumulation_steps": 1,
            "gradient_checkpointing": False,
            "logging_steps": 1,
            "save_checkpoints": False,
        },
    )

    assert code == EXIT_OK
    assert_loss_went_down(out)
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = out / "merged"
    assert (merged / "config.json").is_file()
    saved = json.loads((merged / "tokenizer_config.json").read_text())
    template = saved.get("chat_template") or (merged / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template
    assert_saved_model_learned(out)
    assert_adapter_merged_into(base, merged)
    card = (out / "README.md").read_text()
    assert f"vllm serve {merged} --served-model-name gem-synth" in card
    assert "--mode synthesizer" in card
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["config"]["lora"] is True
    assert recorded["result"]["validation_examples"] == 1
    assert recorded["result"]["eval_loss"] is not None


@needs_extra
def test_full_fine_tuning_through_the_command_line(tmp_path):
    """`--full` trains every weight and writes the model straight to OUT/merged."""
    base = build_base_model(tmp_path / "base", all_text(TRAIN_ROWS), chat_template=True)
    data = write_data(tmp_path / "data", TRAIN_ROWS)
    out = tmp_path / "out"

    options = "--full --lr 3e-3 --max-steps 20 --max-length 256 --batch-size 2 --grad-accum 1"
    options += " --no-gradient-checkpointing --logging-steps 1 --no-checkpoints"
    code = main([str(data), "--base-model", str(base), "-o", str(out), *options.split()])

    assert code == EXIT_OK
    assert_loss_went_down(out)
    assert not (out / "adapter").exists()
    assert_saved_model_learned(out)


def test_missing_train_file_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    code = train_command(tmp_path / "data", tmp_path / "out", {"base_model": "unused"})
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert TRAIN_FILE in err and "gem-graph distill" in err


def test_empty_train_file_is_refused(tmp_path, capsys):
    data = write_data(tmp_path / "data", [])
    assert train_command(data, tmp_path / "out", {"base_model": "unused"}) == EXIT_USAGE
    assert "holds no examples" in capsys.readouterr().err


def test_a_record_without_an_assistant_target_names_its_line(tmp_path, capsys):
    bad = {"messages": [{"role": "user", "content": "text only"}]}
    data = write_data(tmp_path / "data", [example("parcel"), bad])
    assert train_command(data, tmp_path / "out", {"base_model": "unused"}) == EXIT_USAGE
    assert f"{TRAIN_FILE}:2" in capsys.readouterr().err


def test_missing_extra_asks_for_the_extra(tmp_path, capsys, monkeypatch):
    data = write_data(tmp_path / "data", [example("parcel")])
    monkeypatch.setitem(__import__("sys").modules, "trl", None)  # import trl now fails
    assert train_command(data, tmp_path / "out", {"base_model": "unused"}) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "install gem-graph[train]" in err


def test_learning_rate_defaults_follow_the_method():
    assert TrainConfig(base_model="m").effective_learning_rate == 1e-4
    assert TrainConfig(base_model="m", lora=False).effective_learning_rate == 5e-6
    chosen = TrainConfig(base_model="m", lora=False, learning_rate=2e-5)
    assert chosen.effective_learning_rate == 2e-5
