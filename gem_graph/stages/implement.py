"""The implement stage: the extracted tools become SQLite schema, seed rows and Python code."""

from __future__ import annotations

import functools
import json
from typing import Any

from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.environment import (
    Environment,
    EnvironmentFormatError,
    load_environment,
    make_environment,
)
from gem_graph.resources import data_dir
from gem_graph.schemas import ImplementOutput
from gem_graph.smoke import smoke_test
from gem_graph.stages.common import StageContext, bullets, dump, missing_draft

STAGE = "implement"
EXAMPLE_ENVIRONMENTS = ("retail", "clinic")
"""Hand-written reference environments shown to the model: two domains, so it sees the
pattern rather than one shape to copy."""


def environment_to_state(env: Environment) -> dict[str, Any]:
    """JSON-native form of an environment, as kept in graph state."""
    return {
        "manifest": env.manifest.model_dump(mode="json"),
        "schema_sql": env.schema_sql,
        "seed": env.seed,
        "tools_py": env.tools_py,
    }


def environment_from_state(data: dict[str, Any]) -> Environment:
    return make_environment(data["manifest"], data["schema_sql"], data["seed"], data["tools_py"])


@functools.cache
def reference_examples() -> str:
    """The hand-written reference environments, rendered as few-shot examples."""
    parts = []
    for name in EXAMPLE_ENVIRONMENTS:
        env = load_environment(data_dir("environments") / name)
        parts.append(
            "\n".join(
                [
                    f"### Example environment: {name}",
                    "environment.json:",
                    dump(env.manifest.model_dump(mode="json")),
                    "schema.sql:",
                    env.schema_sql.strip(),
                    "seed.json:",
                    json.dumps(env.seed, ensure_ascii=False),
                    "tools.py:",
                    env.tools_py.strip(),
                ]
            )
        )
    return "\n\n".join(parts)


async def implement_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Draft the environment for the blueprint's tools."""
    blueprint = state["blueprint"]
    return await ctx.draft(
        state,
        stage=STAGE,
        schema=ImplementOutput,
        values={
            "text": state["document"]["text"],
            "tools": dump(blueprint["tools"]),
            "workflows": dump(blueprint["workflows"]),
            "rules": bullets(blueprint["rules"]),
            "examples": reference_examples(),
        },
    )


def _assemble(
    state: dict[str, Any], draft: dict[str, Any]
) -> tuple[Environment | None, list[ProblemDict]]:
    blueprint = state["blueprint"]
    document = state["document"]
    try:
        seed = json.loads(draft["seed_json"])
    except ValueError as exc:
        return None, [problem("invalid_output", f"seed_json is not JSON: {exc}", "seed_json")]
    manifest = {
        "name": f"env_{document['id']}",
        "version": "1",
        "description": state.get("labels", {}).get("summary", ""),
        "source": {"doc_id": document["id"], "text_sha256": document.get("text_sha256")},
        "tools": blueprint["tools"],
        "policy": draft["policy"],
        "read_only_tools": blueprint["read_only_tools"],
        "confirm_before": blueprint.get("confirm_before") or [],
    }
    try:
        return make_environment(manifest, draft["schema_sql"], seed, draft["tools_py"]), []
    except EnvironmentFormatError as exc:
        return None, [problem("invalid_environment", str(exc))]


async def check_environment_node(state: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
    """Smoke-test the drafted environment in the sandbox; problems feed the next attempt."""
    draft = state.get("draft")
    env: Environment | None = None
    if draft is None:
        problems = missing_draft(state)
    else:
        env, problems = _assemble(state, draft)
    if env is not None and ctx.sandbox is not None:
        calls = [c for w in state["blueprint"]["workflows"] for c in w["example_calls"]]
        problems = await smoke_test(env, calls, ctx.sandbox())
    if problems or env is None:
        return ctx.failed(state, STAGE, problems, draft)
    return {"problems": [], "feedback": "", "environment": environment_to_state(env)}
