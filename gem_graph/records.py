"""Assemble the record and reject formats of the architecture's contract (pure).

The formats are typed in `gem_graph.contracts`; records and rejects stay plain dicts.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from gem_graph import __version__
from gem_graph.checks.problems import format_feedback
from gem_graph.checks.source import source_spans
from gem_graph.checks.stats import trajectory_stats
from gem_graph.contracts import EnvironmentRef, Problem, Record, Reject, Stats, make_reject
from gem_graph.usage import summarize_usage


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_record(
    state: dict[str, Any],
    *,
    environment_ref: EnvironmentRef | None,
    model_name: str,
    prompt_versions: dict[str, str],
    mode: Literal["pipeline", "synthesizer"] = "pipeline",
) -> Record:
    """One kept trajectory in the record format.

    `provenance.spans` locates each tool, workflow step and rule of the blueprint in the
    source text (`checks.source.source_spans`); None when the blueprint has no quotes, as in
    synthesizer mode.
    """
    document = state["document"]
    trajectory = state["trajectory"]
    labels = {k: v for k, v in (state.get("labels") or {}).items() if k != "relevant"}
    stats: Stats = {
        **trajectory_stats(trajectory["messages"], trajectory.get("patterns")),
        "refined": bool(state.get("refined")),
    }
    if state.get("refine_problems"):
        stats["refine_problems"] = sorted({p["code"] for p in state["refine_problems"]})
    digest = text_sha256(document["text"])
    record: Record = {
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
    if trajectory.get("user_goal") is not None:
        record["user_goal"] = trajectory["user_goal"]
    return record


def build_reject(state: dict[str, Any]) -> Reject:
    """The reject of a graph run: where the document stopped, after how many attempts, and why.

    A node that refused the document set `reject_reason` (`{"code", "reason", "problems"?}`);
    otherwise a validator loop ran out of attempts with `problems` left.
    """
    stage = state.get("stage", "filter")
    reason = state.get("reject_reason")
    attempts = (state.get("attempts") or {}).get(stage, 0)
    problems: list[Problem] | None
    if reason:
        problems = reason.get("problems") or None
        text = reason["reason"]
        code = reason["code"]
    else:
        problems = list(state.get("problems") or [])
        code = problems[0]["code"] if problems else "unknown"
        text = f"{len(problems)} problem(s) left after {attempts} attempt(s):\n" + format_feedback(
            problems, limit=5
        )
    return make_reject(
        state["document"]["id"],
        stage,
        code,
        text,
        attempts=attempts,
        problems=problems,
        usage=summarize_usage(list(state.get("usage", []))),
    )
