"""Synthesizer mode: one model call writes tools, environment and dialogue; the checks stay.

    START → intake ─bad input→ reject
              │
          synthesizer ⇄ check            parse, tool schemas, smoke test, sandbox replay
              │
            judge → emit | reject        (judge on)

The graph takes and gives the same shapes as the document graph (`GemInput` / `GemOutput`),
so the runner can use either. Records say `provenance.mode == "synthesizer"`.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from gem_graph.checks.arguments import parse_arguments
from gem_graph.checks.dialogue import check_dialogue
from gem_graph.checks.messages import call_arguments, call_name, iter_tool_calls
from gem_graph.checks.problems import ProblemDict, format_feedback, problem
from gem_graph.checks.tools import check_tools
from gem_graph.dbstate import DatabaseBuildError, check_rows
from gem_graph.environment import (
    Environment,
    EnvironmentFormatError,
    environment_ref,
    make_environment,
)
from gem_graph.eval.gold import gold_reject
from gem_graph.execution import Call, Parts
from gem_graph.llm import message_text
from gem_graph.nodes import add_document_frame, add_stage_loops, stage_context
from gem_graph.records import build_record
from gem_graph.settings import Settings
from gem_graph.stages.common import StageContext, attempt_update
from gem_graph.stages.implement import environment_from_state, environment_to_state
from gem_graph.stages.judge import judge_node
from gem_graph.state import GemInput, GemOutput, GemState
from gem_graph.synthesizer.format import (
    SynthTarget,
    TargetFormatError,
    parse_target,
    render_target,
)
from gem_graph.usage import usage_entry

STAGE = "synthesizer"
INSTRUCTION = "Turn the following text into multi-turn tool-use trajectories."
"""The fixed instruction of the paper's Trajectory Synthesizer; training data uses it verbatim."""
_BLOCKING = frozenset({"environment_crash", "sandbox_violation", "invalid_environment"})


class SynthesizerState(GemState, total=False):
    """The document state plus the model's raw answer (the tagged target document)."""

    reply: str | None


# ---- nodes --------------------------------------------------------------------------------


async def synthesize_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """One attempt: fixed instruction + text (+ feedback) → the target document, as raw text.

    The chat model is called directly (the answer is tagged text, not JSON) with the same
    run metadata and usage accounting as `StageContext.ask`.
    """
    attempt, messages, config = ctx.prepare(
        state, stage=STAGE, values={"instruction": INSTRUCTION, "text": state["document"]["text"]}
    )
    started = time.perf_counter()
    cap = ctx.output_cap(STAGE)
    model = ctx.llm.runnable(None, "json_text", cap)
    reply = await ctx.llm.invoke(model, messages, config, max_tokens=cap)  # type: ignore[arg-type]
    usage = usage_entry(STAGE, reply, time.perf_counter() - started)
    return {
        **attempt_update(STAGE, attempt, dict(usage)),
        "reply": message_text(reply),
    }


def trajectory_calls(messages: list[dict[str, Any]]) -> list[Call]:
    """The dialogue's own calls, to smoke-test the environment with, located in the dialogue."""
    calls = []
    for site in iter_tool_calls(messages):
        name = call_name(site.call)
        arguments = parse_arguments(call_arguments(site.call))
        if isinstance(name, str) and isinstance(arguments, dict):
            where = f"messages[{site.message_index}].tool_calls[{site.call_index}]"
            calls.append(Call(name, arguments, where))
    return calls


def _manifest(state: dict[str, Any], target: SynthTarget) -> dict[str, Any]:
    document = state["document"]
    return {
        "name": f"env_{document['id']}",
        "version": "1",
        "description": f"Synthesized in one call from document {document['id']}.",
        "source": {"doc_id": document["id"], "text_sha256": document.get("text_sha256")},
        "tools": target["tools"],
        "policy": target["environment"]["policy"],
        "read_only_tools": target["environment"]["read_only_tools"],
    }


def _assemble(
    state: dict[str, Any], target: SynthTarget
) -> tuple[Environment | None, list[ProblemDict]]:
    env = target["environment"]
    try:
        built = make_environment(
            _manifest(state, target), env["schema_sql"], env["seed"], env["tools_py"]
        )
    except EnvironmentFormatError as exc:
        return None, [problem("invalid_environment", str(exc), "tools/read_only_tools/seed")]
    return built, []


def _with_scenario_rows(env: Environment, rows: dict[str, Any]) -> Environment:
    """The environment whose seed also holds the scenario rows, for the smoke test."""
    seed = {table: list(items) for table, items in env.seed.items()}
    for table, items in rows.items():
        seed[table] = seed.get(table, []) + list(items)
    return make_environment(env.manifest, env.schema_sql, seed, env.tools_py)


_PARTS = Parts(tools="tools_py", database="schema_sql/seed", seed="seed")
"""This answer's sections, where smoke-test problems point."""


async def _execute(
    env: Environment, target: SynthTarget, sandbox: Any
) -> tuple[list[ProblemDict], list[dict[str, Any]], dict[str, Any] | None]:
    """Smoke-test the environment with the dialogue's calls, then replay the dialogue."""
    from gem_graph.smoke import smoke_test
    from gem_graph.verify import verify_trajectory  # the sandbox loads only when executing

    messages = target["messages"]
    rows = target["scenario"].get("rows") or {}
    try:
        check_rows(rows, "scenario rows")  # the rows are loaded inside the sandbox
        smoke_env = _with_scenario_rows(env, rows)
    except (DatabaseBuildError, EnvironmentFormatError) as exc:
        return (
            [problem("invalid_environment", str(exc), "schema_sql/seed/scenario")],
            messages,
            None,
        )
    problems = await smoke_test(smoke_env, trajectory_calls(messages), sandbox, parts=_PARTS)
    if any(p["code"] in _BLOCKING for p in problems):
        return problems, messages, None
    result = await verify_trajectory(
        environment=env,
        messages=messages,
        tools=target["tools"],
        scenario=target["scenario"],
        sandbox=sandbox,
    )
    return problems + result["problems"], result["messages"], result["verification"]


def _rules(policy: str) -> list[str]:
    lines = [line.strip().lstrip("-*• ").strip() for line in policy.splitlines()]
    return [line for line in lines if line]


async def check_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Parse the answer, check the tools, build the environment and (with execution) run it."""
    target, problems = parse_target(state.get("reply"))
    if target is None:
        return _failed(state, ctx, problems, None)
    problems = check_tools(target["tools"])
    env, found = _assemble(state, target)
    problems += found
    messages = target["messages"]
    verification: dict[str, Any] | None = None
    if env is not None and ctx.sandbox is not None:
        found, messages, verification = await _execute(env, target, ctx.sandbox())
        problems += found
    else:
        from gem_graph.verify import dialogue_context

        context = dialogue_context(None, target["scenario"], ctx.settings)
        problems += check_dialogue(messages, target["tools"], context)
    if problems or env is None:
        # With execution the tool messages now hold the real outputs: the model sees them.
        return _failed(state, ctx, problems, {**target, "messages": messages})
    return {
        "problems": [],
        "feedback": "",
        "environment": environment_to_state(env),
        "blueprint": {
            "tools": target["tools"],
            "rules": _rules(target["environment"]["policy"]),
            "read_only_tools": target["environment"]["read_only_tools"],
        },
        "trajectory": {
            "messages": messages,
            "scenario": target["scenario"],
            "tools": target["tools"],
            "patterns": [],
            "user_goal": target.get("user_goal"),
        },
        "verification": verification,
    }


def synthesizer_feedback(
    *, attempt: int, cap: int, problems: list[ProblemDict], previous: SynthTarget | None
) -> str:
    """The block appended to the next synthesizer prompt after a failed attempt."""
    lines = [
        f"## Feedback on your previous answer (attempt {attempt} of {cap} failed)",
        "Your previous answer had these problems. Fix every one of them and answer again "
        "with the complete document, all eight sections:",
        format_feedback(problems),
    ]
    if previous is not None:
        try:
            rendered = render_target(previous)
        except TargetFormatError:
            rendered = None
        if rendered is not None:
            lines += [
                "",
                "Your previous answer, for reference (tool messages hold what the code "
                "really returned where it could run):",
                rendered,
            ]
    return "\n".join(lines)


def _failed(
    state: dict[str, Any],
    ctx: StageContext,
    problems: list[ProblemDict],
    previous: SynthTarget | None,
) -> dict[str, Any]:
    return {
        "problems": problems,
        "feedback": synthesizer_feedback(
            attempt=state["attempts"][STAGE],
            cap=ctx.cap(STAGE),
            problems=problems,
            previous=previous,
        ),
    }


# ---- factories ----------------------------------------------------------------------------


def build_synthesizer_state_graph(
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    sandbox: Any | None = None,
) -> StateGraph[SynthesizerState, None, GemInput, GemOutput]:
    """The uncompiled synthesizer graph, for callers who compile it with their own options."""
    ctx = stage_context(llm=llm, settings=settings, sandbox=sandbox)
    settings = ctx.settings

    async def emit(state: dict[str, Any]) -> dict[str, Any]:
        env = state["environment"]
        record = build_record(
            state,
            environment_ref=environment_ref(environment_from_state(env)),
            model_name=ctx.model_name,
            prompt_versions=ctx.prompt_versions,
            mode="synthesizer",
        )
        if ctx.sandbox is not None:  # a task its own gold cannot pass is not kept
            failed = await gold_reject(state, record, environment_from_state(env), ctx.sandbox())
            if failed is not None:
                return {"rejects": [failed]}
        return {"records": [record], "environments": [env]}

    graph = StateGraph(SynthesizerState, input_schema=GemInput, output_schema=GemOutput)
    first = add_stage_loops(
        graph,
        ctx,
        mode="synthesizer",
        nodes={STAGE: synthesize_node, "judge": judge_node},
        checks={"check": check_node},
    )
    add_document_frame(graph, settings=settings, first=first, emit=emit)
    return graph


def build_synthesizer_graph(
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    sandbox: Any | None = None,
    name: str = "gem_synthesizer",
) -> CompiledStateGraph[SynthesizerState, None, GemInput, GemOutput]:
    """The compiled synthesizer graph: same input and output as `build_gem_graph`.

    Compiled without a checkpointer, so it embeds as a subgraph.
    """
    return build_synthesizer_state_graph(llm=llm, settings=settings, sandbox=sandbox).compile(
        name=name
    )
