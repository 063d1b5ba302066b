"""Stage 3, trajectory grounding: the whole dialogue written in one pass."""

from __future__ import annotations

import json
from typing import Any

from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.schemas import TrajectoryOutput
from gem_graph.stages.common import StageContext, bullets, confirm_before_tools, dump

STAGE = "ground"
_SEED_PREVIEW_CHARS = 6000


def environment_text(environment: dict[str, Any] | None) -> str:
    """How the executable environment is described to the dialogue writers."""
    if not environment:
        return (
            "No executable environment exists for these tools. Write tool outputs as a "
            'careful implementation would return them, keep rows_json as "{}" and '
            "new_tools empty unless the stage asks for more tools."
        )
    manifest = environment["manifest"]
    seed = json.dumps(environment["seed"], ensure_ascii=False)
    if len(seed) > _SEED_PREVIEW_CHARS:
        seed = seed[:_SEED_PREVIEW_CHARS] + " … (truncated)"
    return "\n".join(
        [
            "An executable environment exists: every tool call will be run against it.",
            "Policy enforced by the code:",
            manifest.get("policy", ""),
            f"Read-only tools: {', '.join(manifest.get('read_only_tools', [])) or '(none)'}",
            "SQLite schema:",
            environment["schema_sql"].strip(),
            "Seed rows (JSON):",
            seed,
            "Tool code (what each call really does):",
            environment["tools_py"].strip(),
        ]
    )


def trajectory_from_draft(draft: dict[str, Any]) -> tuple[dict[str, Any], list[ProblemDict]]:
    """OpenAI chat messages and the scenario from a `TrajectoryOutput` dump."""
    problems: list[ProblemDict] = []
    messages: list[dict[str, Any]] = []
    for message in draft.get("messages", []):
        role = message.get("role")
        out: dict[str, Any] = {"role": role, "content": message.get("content")}
        if role == "assistant" and message.get("tool_calls"):
            out["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": c["function"]["arguments"],
                    },
                }
                for c in message["tool_calls"]
            ]
        if role == "tool":
            out["tool_call_id"] = message.get("tool_call_id")
        if role != "assistant" and out["content"] is None:
            out["content"] = ""
        messages.append(out)
    scenario_draft = draft.get("scenario") or {}
    rows: Any = {}
    raw_rows = scenario_draft.get("rows_json") or "{}"
    try:
        rows = json.loads(raw_rows)
    except ValueError as exc:
        problems.append(
            problem(
                "invalid_output", f"scenario.rows_json is not JSON: {exc}", "scenario.rows_json"
            )
        )
    if not isinstance(rows, dict):
        problems.append(
            problem(
                "invalid_output",
                'scenario.rows_json must be a JSON object {"table": [row, ...]}',
                "scenario.rows_json",
            )
        )
        rows = {}
    trajectory = {
        "messages": messages,
        "scenario": {"now": scenario_draft.get("now"), "rows": rows},
        "patterns": sorted(set(draft.get("patterns", []))),
    }
    if isinstance(draft.get("user_goal"), dict):
        trajectory["user_goal"] = draft["user_goal"]
    return trajectory, problems


def dialogue_values(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """What both dialogue writers (ground and refine) are shown about the document."""
    blueprint = state["blueprint"]
    return {
        "text": state["document"]["text"],
        "tools": dump(blueprint["tools"]),
        "rules": bullets(blueprint["rules"]),
        "environment": environment_text(state.get("environment")),
        "confirm_before": ", ".join(confirm_before_tools(state)) or "(none)",
        "min_patterns": ctx.settings.pipeline.min_patterns,
    }


async def ground_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Draft a whole dialogue for the extracted tools."""
    values = dialogue_values(state, ctx)
    values["workflows"] = dump(state["blueprint"]["workflows"])
    return await ctx.draft(state, stage=STAGE, schema=TrajectoryOutput, values=values)
