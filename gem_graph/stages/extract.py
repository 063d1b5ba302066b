"""Stage 2, workflow and tool extraction, with its blueprint check."""

from __future__ import annotations

import json
from typing import Any

from gem_graph.checks.blueprint import check_blueprint, rule_texts, step_texts
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


def _quote(item: Any) -> str | None:
    return item.get("quote") if isinstance(item, dict) else None


def blueprint_from_draft(draft: dict[str, Any]) -> dict[str, Any]:
    """The checked draft in the shape later stages use: OpenAI tools, parsed arguments, plain
    step and rule texts, the tools needing consent, and the quotes apart (for provenance)."""
    tools, _ = tools_from_drafts(draft["tools"])
    workflows = []
    for workflow in draft["workflows"]:
        calls = [
            {"tool": call["tool"], "arguments": json.loads(call["arguments_json"])}
            for call in workflow["example_calls"]
        ]
        workflows.append(
            {
                **{k: v for k, v in workflow.items() if k not in ("example_calls", "steps")},
                "steps": step_texts(workflow),
                "example_calls": calls,
            }
        )
    return {
        "tools": tools,
        "read_only_tools": read_only_names(draft["tools"]),
        "confirm_before": [t["name"] for t in draft["tools"] if t.get("confirm_before") is True],
        "workflows": workflows,
        "rules": rule_texts(draft),
        "quotes": {
            "tools": {t["name"]: _quote(t) for t in draft["tools"]},
            "steps": [[_quote(step) for step in w["steps"]] for w in draft["workflows"]],
            "rules": [_quote(rule) for rule in draft["rules"]],
        },
    }


def check_blueprint_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Pure checks of the draft; problems become the next attempt's feedback."""
    draft = state.get("draft")
    text = state["document"]["text"]
    problems = missing_draft(state) if draft is None else list(check_blueprint(draft, text))
    if problems:
        return ctx.failed(state, STAGE, problems, draft)
    return {"problems": [], "feedback": "", "blueprint": blueprint_from_draft(draft)}  # type: ignore[arg-type]
