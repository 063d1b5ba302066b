"""Distilled pairs as training data: `gem-graph distill` JSONL into TRL prompt-completion form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gem_graph.train.config import TrainError

TRAIN_FILE = "train.openai.jsonl"
VALIDATION_FILE = "validation.openai.jsonl"

Example = dict[str, list[dict[str, str]]]
"""One prompt-completion example: `{"prompt": [messages], "completion": [assistant]}`."""


def to_prompt_completion(record: Any, where: str) -> Example:
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


def load_examples(path: Path) -> list[Example]:
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


def load_data_dir(data_dir: Path) -> tuple[list[Example], list[Example]]:
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
