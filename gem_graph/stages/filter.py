"""Stage 1, relevance filtering: keep only texts that describe multi-step procedures."""

from __future__ import annotations

from typing import Any

from gem_graph.checks.problems import problem
from gem_graph.schemas import FilterOutput
from gem_graph.stages.common import StageContext

STAGE = "filter"


async def filter_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Ask for a relevance verdict and labels; an unreadable answer is a failed attempt."""
    update, result = await ctx.ask(
        state, stage=STAGE, schema=FilterOutput, values={"text": state["document"]["text"]}
    )
    if result.parsed is None:
        problems = [problem("invalid_output", result.error or "no answer")]
        return {**update, **ctx.failed(state, STAGE, problems, attempt=update["attempts"][STAGE])}
    verdict = result.parsed
    update["labels"] = verdict.model_dump()
    update["problems"] = []
    if not verdict.relevant:
        update["reject_reason"] = {
            "code": "irrelevant",
            "reason": verdict.reason or "the text does not describe a multi-step procedure",
        }
    return update
