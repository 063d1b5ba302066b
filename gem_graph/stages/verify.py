"""The check after `ground` and `refine`: rule checks, then replay of every call in the sandbox.

With execution on, the written tool outputs are replaced by what the code returned and any
divergence goes back to the stage as feedback. Without it, only the rule checks run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gem_graph.checks.dialogue import check_dialogue
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.stats import check_patterns
from gem_graph.checks.tools import check_tools, tools_from_drafts
from gem_graph.stages.common import StageContext, missing_draft
from gem_graph.stages.ground import trajectory_from_draft
from gem_graph.stages.implement import environment_from_state
from gem_graph.verify import dialogue_context, verify_trajectory


def _tools_for(
    state: dict[str, Any], draft: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[ProblemDict]]:
    """The tool list the dialogue may use; refinement may add tools only without execution."""
    tools = list(state["blueprint"]["tools"])
    new = draft.get("new_tools") or []
    if not new:
        return tools, []
    if state.get("environment"):
        return tools, [
            problem(
                "invalid_output",
                "new_tools must be empty: the environment is fixed code, use the existing tools",
                "new_tools",
            )
        ]
    added, problems = tools_from_drafts(new)
    merged = tools + added
    return merged, problems + check_tools(merged)


async def verify_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Check and (with execution) replay the latest draft of `ground` or `refine`."""
    stage = state["stage"]
    draft = state.get("draft")
    if draft is None:
        return _failed(state, ctx, stage, missing_draft(state), None)

    trajectory, problems = trajectory_from_draft(draft)
    tools, tool_problems = _tools_for(state, draft)
    problems += tool_problems
    problems += check_patterns(trajectory["patterns"], ctx.settings.pipeline.min_patterns)
    verification: dict[str, Any] | None = None
    if state.get("environment") and ctx.sandbox is not None:
        environment = environment_from_state(state["environment"])
        result = await verify_trajectory(
            environment=environment,
            messages=trajectory["messages"],
            tools=tools,
            scenario=trajectory["scenario"],
            sandbox=ctx.sandbox(),
            context=dialogue_context(environment, trajectory["scenario"], ctx.settings),
        )
        problems += result["problems"]
        trajectory["messages"] = result["messages"]
        verification = result["verification"]
    else:
        context = replace(
            dialogue_context(None, trajectory["scenario"], ctx.settings),
            confirm_before=frozenset(state["blueprint"].get("confirm_before") or ()),
        )
        problems += check_dialogue(trajectory["messages"], tools, context)
    if problems:
        # With execution, tool messages already hold the real outputs: the model sees them.
        previous = {"messages": trajectory["messages"], "scenario": trajectory["scenario"]}
        return _failed(state, ctx, stage, problems, previous)
    update: dict[str, Any] = {
        "problems": [],
        "feedback": "",
        "trajectory": {**trajectory, "tools": tools},
        "verification": verification,
        "refined": stage == "refine",
    }
    return update


def _failed(
    state: dict[str, Any],
    ctx: StageContext,
    stage: str,
    problems: list[ProblemDict],
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """Feedback for another attempt; or, when refinement has run out of attempts and the
    settings keep unrefined work, carry on with the verified grounded trajectory."""
    exhausted = state["attempts"][stage] >= ctx.cap(stage)
    if stage == "refine" and exhausted and ctx.settings.pipeline.keep_unrefined:
        return {"problems": [], "feedback": "", "refine_problems": problems}
    return ctx.failed(state, stage, problems, previous)
