"""Stage 2, workflow and tool extraction, with its blueprint check."""

from __future__ import annotations

import json
from typing import Any

from gem_graph.checks.blueprint import check_blueprint
from gem_graph.checks.tools import read_only_names, tools_from_drafts
from gem_graph.schemas import ExtractOutput
from gem_graph.stages.common import StageContext, dump, missing_draft

STAGE = "extract"


async def extract_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Draft workflows, tools and rules from the text."""
    return await ctx.draft(
        state,
        stage=STAGE,
        schema=ExtractOutput,
        values={"text": state["document"]["text"], "labels": dump(state.get("labels", {}))},
    )


def blueprint_from_draft(draft: dict[str, Any]) -> dict[str, Any]:
    """The checked draft in the shape later stages use: OpenAI tools and parsed arguments."""
    tools, _ = tools_from_drafts(draft["tools"])
    workflows = []
    for workflow in draft["workflows"]:
        calls = [
            {"tool": call["tool"], "arguments": json.loads(call["arguments_json"])}
            for call in workflow["example_calls"]
        ]
        workflows.append(
            {**{k: v for k, v in workflow.items() if k != "example_calls"}, "example_calls": calls}
        )
    return {
        "tools": tools,
        "read_only_tools": read_only_names(draft["tools"]),
        "workflows": workflows,
        "rules": list(draft["rules"]),
    }


def check_blueprint_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Pure checks of the draft; problems become the next attempt's feedback."""
    draft = state.get("draft")
    problems = missing_draft(state) if draft is None else list(check_blueprint(draft))
    if problems:
        return ctx.failed(state, STAGE, problems, draft)
    return {"problems": [], "feedback": "", "blueprint": blueprint_from_draft(draft)}  # type: ignore[arg-type]
