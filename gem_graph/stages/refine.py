"""Stage 4, complexity refinement: a harder, more realistic rewrite of the dialogue."""

from __future__ import annotations

from typing import Any

from gem_graph.schemas import TrajectoryOutput
from gem_graph.stages.common import StageContext, dump
from gem_graph.stages.ground import dialogue_values

STAGE = "refine"


async def refine_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Rewrite the verified grounded dialogue to be harder, keeping every rule."""
    trajectory = state["trajectory"]
    values = dialogue_values(state, ctx)
    values["trajectory"] = dump({"messages": trajectory["messages"]})
    values["scenario"] = dump(trajectory["scenario"])
    return await ctx.draft(state, stage=STAGE, schema=TrajectoryOutput, values=values)
