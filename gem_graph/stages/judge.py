"""Stage 5, validation: the LLM rubric judge (R1-R4) on top of the rule checks."""

from __future__ import annotations

from typing import Any

from gem_graph.checks.problems import problem
from gem_graph.checks.stats import trajectory_stats
from gem_graph.schemas import JudgeOutput
from gem_graph.settings import Settings
from gem_graph.stages.common import StageContext, bullets, confirm_before_tools, dump

STAGE = "judge"
RUBRICS = {
    "r1_tool_call_hallucination": "R1",
    "r2_capability_hallucination": "R2",
    "r3_context_hallucination": "R3",
    "r4_policy_and_consent": "R4",
}


def _policy(state: dict[str, Any]) -> str:
    environment = state.get("environment")
    policy = environment["manifest"].get("policy", "") if environment else ""
    return policy.strip() or bullets(state["blueprint"]["rules"])


def rule_findings(state: dict[str, Any], settings: Settings | None = None) -> str:
    """What the mechanical checks established, and what they left open, for the judge.

    One line per check of `checks.dialogue.check_dialogue` (structure, grounding, consent,
    claims, hygiene), then patterns and execution; a trajectory reaches the judge only when
    all of them passed. Keep these lines in step with those checks' docstrings.
    """
    pipeline = (settings or Settings()).pipeline
    trajectory = state["trajectory"]
    stats = trajectory_stats(trajectory["messages"], trajectory.get("patterns"))
    verification = state.get("verification")
    consent = confirm_before_tools(state)
    lines = [
        "These mechanical checks ran and passed:",
        "- Structure and turn order: the system message first, an assistant turn after every "
        "user or tool turn, every call answered by exactly one tool message with its id, no "
        "user turn straight after a tool turn.",
        "- Calls: every call names a declared tool, with arguments that form a JSON object "
        "valid against that tool's JSON Schema (types, required and unexpected properties).",
        "- Token-level grounding: call argument values and the id-like tokens in the "
        "assistant's text were found in earlier system, user or tool messages; relative "
        "dates were resolved against the scenario clock. Exempt: booleans and null, values "
        "the tool schema enumerates or gives as default, small paging and quantity counts, "
        "and the wording of multi-word free text (only its ids and numbers were looked "
        "for). A value found verbatim can still be the wrong one.",
    ]
    if consent:
        lines.append(
            f"- Consent for {', '.join(consent)}: every call of these came after an assistant "
            "question and a user turn agreeing, not in the message that asked, and each number "
            "in its arguments was stated in that question or agreement, each id there too or "
            "stated earlier with no other id of its kind in the exchange. Whether the question "
            "described the action truthfully was not checked."
        )
    else:
        lines.append("- Consent: no tool is marked as needing agreement; nothing was checked.")
    lines += [
        "- Claims: amounts, counts with units, dates, times, short ids, phone numbers, quoted "
        "strings and names in the assistant's text were found in earlier context or one "
        "step of arithmetic from it, and do not contradict the output field they name; no "
        "success is claimed after a failed call"
        + (
            ", and no write is claimed without a successful call of it."
            if state.get("environment")
            else "; claimed writes were not checked (no environment)."
        )
        + " Not covered: numbers in prose without a unit, paraphrased outcomes, names that "
        "share no word with any output.",
        f"- Hygiene: at most {pipeline.max_messages} messages, no run of more than "
        f"{pipeline.max_identical_calls} identical calls, no tool source code in the system "
        "prompt.",
    ]
    if trajectory.get("patterns"):
        lines.append(
            f"- Behaviour patterns declared by the writer: {', '.join(trajectory['patterns'])}; "
            "only their names and number were checked, not that the dialogue shows them."
        )
    if verification:
        lines.append(
            f"- Execution: all {len(verification.get('calls', []))} tool calls were executed "
            "against the real environment; the tool outputs shown are what the code returned "
            "and are ground truth. The code enforces the policy only as far as it is written."
        )
    else:
        lines.append(
            "- Execution: none. Tool outputs were written by a model and checked for form only."
        )
    lines += [
        f"- Statistics: {dump(stats)}",
        "Not checked mechanically: what the user meant, whether the assistant followed the "
        "policy where the code does not enforce it, and the meaning of its statements beyond "
        "the values above.",
    ]
    return "\n".join(lines)


async def judge_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Score R1-R4; any failed rubric rejects the trajectory (no rewrite loop)."""
    trajectory = state["trajectory"]
    update, result = await ctx.ask(
        state,
        stage=STAGE,
        schema=JudgeOutput,
        values={
            "tools": dump(trajectory.get("tools", state["blueprint"]["tools"])),
            "rules": bullets(state["blueprint"]["rules"]),
            "policy": _policy(state),
            "confirm_before": ", ".join(confirm_before_tools(state)) or "(none)",
            "trajectory": dump({"messages": trajectory["messages"]}),
            "rule_findings": rule_findings(state, ctx.settings),
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
