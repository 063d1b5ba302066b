"""Small builders shared by the dialogue-check tests."""

from __future__ import annotations

import json
from typing import Any


def codes(problems: list[dict[str, Any]]) -> list[str]:
    """The distinct problem codes, sorted."""
    return sorted({p["code"] for p in problems})


def call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    """One OpenAI-format tool call."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
