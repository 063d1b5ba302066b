"""Stage 5, validation: the LLM rubric judge (R1-R3) on top of the rule checks."""

from __future__ import annotations

from typing import Any

from gem_graph.checks.problems import problem
from gem_graph.checks.stats import trajectory_stats
from gem_graph.schemas import JudgeOutput
from gem_graph.stages.common import StageContext, bullets, dump

STAGE = "judge"
RUBRICS = {
    "r1_tool_call_hallucination": "R1",
    "r2_capability_hallucination": "R2",
    "r3_context_hallucination": "R3",
}


def rule_findings(state: dict[str, Any]) -> str:
    """What the mechanical checks established, for the judge to rely on."""
    trajectory = state["trajectory"]
    stats = trajectory_stats(trajectory["messages"], trajectory.get("patterns"))
    verification = state.get("verification")
    lines = [
        "- Structure, turn order, tool names and argument schemas: passed.",
        "- Mechanical grounding (every argument value appears earlier in the dialogue): passed.",
        f"- Statistics: {dump(stats)}",
    ]
    if verification:
        lines.append(
            f"- Every one of the {len(verification.get('calls', []))} tool calls was executed "
            "against the real environment; the tool outputs shown are what the code returned "
            "and are ground truth."
        )
    else:
        lines.append("- Tool outputs were written by a model, not executed.")
    return "\n".join(lines)


async def judge_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Score R1-R3; any failed rubric rejects the trajectory (no rewrite loop)."""
    trajectory = state["trajectory"]
    update, result = await ctx.ask(
        state,
        stage=STAGE,
        schema=JudgeOutput,
        values={
            "tools": dump(trajectory.get("tools", state["blueprint"]["tools"])),
            "rules": bullets(state["blueprint"]["rules"]),
            "trajectory": dump({"messages": trajectory["messages"]}),
            "rule_findings": rule_findings(state),
        },
    )
    if result.parsed is None:
        problems = [problem("invalid_output", result.error or "no answer")]
        return {**update, **ctx.failed(state, STAGE, problems, attempt=update["attempts"][STAGE])}
    verdict = result.parsed.model_dump()
    failed = [
        problem("judge_failed", f"{label}: {verdict[key]['reason']}", label)
        for key, label in RUBRICS.items()
        if not verdict[key]["passed"]
    ]
    update["judge"] = {
        "passed": not failed,
        "rubrics": {RUBRICS[k]: verdict[k] for k in RUBRICS},
        "rule_checks": {"passed": True},
    }
    update["problems"] = []
    if failed:
        update["reject_reason"] = {
            "code": "judge_failed",
            "reason": "; ".join(p["message"] for p in failed),
            "problems": failed,
        }
    return update


def route_judge(state: dict[str, Any], ctx: StageContext) -> str:
    if state.get("reject_reason"):
        return "reject"
    if state.get("problems"):
        return STAGE if state["attempts"][STAGE] < ctx.cap(STAGE) else "reject"
    return "emit"
