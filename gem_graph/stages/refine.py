"""Stage 4, complexity refinement: a harder, more realistic rewrite of the dialogue."""

from __future__ import annotations

from typing import Any

from gem_graph.schemas import TrajectoryOutput
from gem_graph.stages.common import StageContext, bullets, dump
from gem_graph.stages.ground import environment_text

STAGE = "refine"


async def refine_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Rewrite the verified grounded dialogue to be harder, keeping every rule."""
    blueprint = state["blueprint"]
    trajectory = state["trajectory"]
    return await ctx.draft(
        state,
        stage=STAGE,
        schema=TrajectoryOutput,
        values={
            "text": state["document"]["text"],
            "tools": dump(blueprint["tools"]),
            "rules": bullets(blueprint["rules"]),
            "environment": environment_text(state.get("environment")),
            "trajectory": dump({"messages": trajectory["messages"]}),
            "scenario": dump(trajectory["scenario"]),
            "min_patterns": ctx.settings.pipeline.min_patterns,
        },
    )
