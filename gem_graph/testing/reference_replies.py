"""Scripted stage replies made from the hand-written reference environments.

The reference environments (`environments/retail`, `environments/clinic`) come with gold
dialogues whose tool outputs are what their code returns. Tests and benchmarks turn them
into the answers each stage would give, so the real graph, checks and sandbox run without
a model: the implement answer is the environment itself, the ground answer a gold dialogue.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gem_graph.checks.source import MAX_QUOTE_CHARS, MIN_QUOTE_WORDS
from gem_graph.environment import Environment, load_environment
from gem_graph.resources import data_dir

FILTER_OK: dict[str, Any] = {
    "relevant": True,
    "reason": "A multi-step procedure on a website.",
    "summary": "Customer self-service.",
    "platform": "computer",
    "domain": "e_commerce",
    "category": "account_management",
}
JUDGE_OK: dict[str, Any] = {
    "r1_tool_call_hallucination": {"passed": True, "reason": "Every value comes from context."},
    "r2_capability_hallucination": {"passed": True, "reason": "Stays within the tools."},
    "r3_context_hallucination": {"passed": True, "reason": "Ids and facts stay consistent."},
    "r4_policy_and_consent": {"passed": True, "reason": "Rules kept; writes were agreed."},
}
PATTERNS = ["clarification", "rule_awareness", "multi_hop"]
RETAIL_TEXT = """Summit Outfitters help centre: cancelling or returning an order.
Sign in with the email and zip code on your account. Open your orders to see each order's
status. Pending orders can be cancelled (choose a reason) or get a new shipping address.
Delivered orders can be returned within 30 days, at most 3 units per return.
"""
"""A help-centre text that the retail reference environment implements."""


def reference_environment(name: str) -> Environment:
    return load_environment(data_dir("environments") / name)


def gold_record(name: str, index: int) -> dict[str, Any]:
    """The `index`-th gold dialogue of reference environment `name`, in the record format."""
    lines = (data_dir("environments") / name / "trajectories.jsonl").read_text().splitlines()
    return dict(json.loads(lines[index]))


def dialogue_calls(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`(tool, arguments)` of every call in a record's dialogue, in order."""
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for m in record["messages"]
        for c in m.get("tool_calls") or []
    ]


def _sentences(text: str) -> list[str]:
    """The sentences of a text, each at most `MAX_QUOTE_CHARS` long (cut at a word)."""
    found = []
    for piece in re.split(r"(?<=[.!?:])\s+|\n+", text):
        piece = piece.strip()
        if len(piece.split()) < MIN_QUOTE_WORDS:
            continue
        if len(piece) > MAX_QUOTE_CHARS:
            piece = piece[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0]
        found.append(piece)
    return found or [" ".join(text.split()[:MIN_QUOTE_WORDS])]


def quote_for(text: str, about: str) -> str:
    """The sentence of `text` sharing the most words with `about`: a real, verbatim quote."""
    words = set(re.findall(r"[a-z]{3,}", about.lower().replace("_", " ")))
    sentences = _sentences(text)
    return max(sentences, key=lambda s: len(words & set(re.findall(r"[a-z]{3,}", s.lower()))))


def extract_reply(env: Environment, record: dict[str, Any], text: str) -> dict[str, Any]:
    """An extraction answer: the environment's tools as drafts, the dialogue's calls as
    example calls, the policy's lines as rules, each quoting its closest sentence of `text`."""
    rules = [line.strip("- ").strip() for line in env.policy.splitlines() if line.strip()]
    return {
        "workflows": [
            {
                "name": "main",
                "description": "The procedure of the text.",
                "steps": [
                    {"step": f"use {name}", "quote": quote_for(text, name)}
                    for name in env.manifest.tool_names
                ],
                "graph": "->".join(f"({name})" for name in env.manifest.tool_names),
                "constraints": rules[:4],
                "example_calls": [
                    {"tool": name, "arguments_json": json.dumps(args)}
                    for name, args in dialogue_calls(record)
                ],
            }
        ],
        "tools": [
            {
                "name": t["function"]["name"],
                "description": t["function"]["description"],
                "parameters_json": json.dumps(t["function"]["parameters"]),
                "read_only": t["function"]["name"] in env.manifest.read_only_tools,
                "confirm_before": t["function"]["name"] in env.manifest.confirm_before,
                "quote": quote_for(text, f"{t['function']['name']} {t['function']['description']}"),
            }
            for t in env.tools
        ],
        "rules": [{"rule": rule, "quote": quote_for(text, rule)} for rule in rules],
    }


def implement_reply(env: Environment) -> dict[str, Any]:
    """An implement answer that is the reference environment itself."""
    return {
        "schema_sql": env.schema_sql,
        "seed_json": json.dumps(env.seed),
        "tools_py": env.tools_py,
        "policy": env.policy,
    }


def trajectory_reply(record: dict[str, Any]) -> dict[str, Any]:
    """A ground/refine answer that is the record's dialogue."""
    return {
        "messages": [
            {
                "role": m["role"],
                "content": m.get("content"),
                "tool_calls": m.get("tool_calls"),
                "tool_call_id": m.get("tool_call_id"),
            }
            for m in record["messages"]
        ],
        "scenario": {
            "now": record["scenario"]["now"],
            "rows_json": json.dumps(record["scenario"]["rows"]),
        },
        "patterns": list(PATTERNS),
        "new_tools": [],
    }


def synthesizer_reply(env: Environment, record: dict[str, Any]) -> str:
    """A synthesizer answer (the target document) holding the environment and the dialogue."""
    from gem_graph.synthesizer.format import render_target, target_from_parts

    return render_target(
        target_from_parts(
            tools=env.tools,
            schema_sql=env.schema_sql,
            seed=env.seed,
            tools_py=env.tools_py,
            policy=env.policy,
            read_only_tools=env.manifest.read_only_tools,
            scenario=record["scenario"],
            messages=record["messages"],
        )
    )
