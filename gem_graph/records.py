"""Assemble the record and reject formats of the architecture's contract (pure)."""

from __future__ import annotations

import hashlib
from typing import Any

from gem_graph import __version__
from gem_graph.checks.problems import format_feedback
from gem_graph.checks.source import source_spans
from gem_graph.checks.stats import trajectory_stats
from gem_graph.llm import summarize_usage


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_record(
    state: dict[str, Any],
    *,
    environment_ref: dict[str, str] | None,
    model_name: str,
    prompt_versions: dict[str, str],
    mode: str = "pipeline",
) -> dict[str, Any]:
    """One kept trajectory in the record format.

    `provenance.spans` locates each tool, workflow step and rule of the blueprint in the
    source text (`checks.source.source_spans`); None when the blueprint has no quotes, as in
    synthesizer mode.
    """
    document = state["document"]
    trajectory = state["trajectory"]
    labels = {k: v for k, v in (state.get("labels") or {}).items() if k != "relevant"}
    stats = trajectory_stats(trajectory["messages"], trajectory.get("patterns"))
    stats["refined"] = bool(state.get("refined"))
    if state.get("refine_problems"):
        stats["refine_problems"] = sorted({p["code"] for p in state["refine_problems"]})
    digest = text_sha256(document["text"])
    return {
        "id": f"{document['id']}#{digest[:8]}",
        "source": {
            "doc_id": document["id"],
            "text_sha256": digest,
            "labels": labels,
            "meta": document.get("meta") or {},
        },
        "environment": environment_ref,
        "scenario": trajectory["scenario"],
        "tools": trajectory.get("tools") or state["blueprint"]["tools"],
        "messages": trajectory["messages"],
        "verification": state.get("verification"),
        "judge": state.get("judge"),
        "stats": stats,
        "usage": summarize_usage(list(state.get("usage", []))),
        "provenance": {
            "package": f"gem-graph {__version__}",
            "mode": mode,
            "models": {"default": model_name},
            "prompts": dict(sorted(prompt_versions.items())),
            "spans": source_spans(state.get("blueprint"), document["text"]),
        },
    }


def build_reject(state: dict[str, Any]) -> dict[str, Any]:
    """The reject record: where a document stopped, after how many attempts, and why."""
    stage = state.get("stage", "filter")
    reason = state.get("reject_reason")
    attempts = (state.get("attempts") or {}).get(stage, 0)
    if reason:
        problems = reason.get("problems") or [
            {"code": reason["code"], "message": reason["reason"], "where": ""}
        ]
        text = reason["reason"]
        code = reason["code"]
    else:
        problems = list(state.get("problems") or [])
        code = problems[0]["code"] if problems else "unknown"
        text = f"{len(problems)} problem(s) left after {attempts} attempt(s):\n" + format_feedback(
            problems, limit=5
        )
    return {
        "doc_id": state["document"]["id"],
        "stage": stage,
        "attempts": attempts,
        "code": code,
        "reason": text,
        "problems": problems,
        "usage": summarize_usage(list(state.get("usage", []))),
    }
