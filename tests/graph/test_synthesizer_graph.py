"""Synthesizer mode end to end: one scripted generation, real parser, real sandbox replay.

The scripted answers are the retail reference environment and its gold dialogues rendered
in the target format, so the checks, the smoke test and the verifier all run for real.
"""

from __future__ import annotations

from typing import Any

import pytest
from library_script import JUDGE_OK, make_model

from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import AttemptSettings, ModelSettings, PipelineSettings, Settings
from gem_graph.synthesizer import INSTRUCTION, build_synthesizer_graph, parse_target
from gem_graph.testing.reference_replies import (
    RETAIL_TEXT,
    gold_record,
    reference_environment,
    synthesizer_reply,
)

TEXT = RETAIL_TEXT

needs_sandbox = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)


def gold(index: int) -> dict[str, Any]:
    return gold_record("retail", index)


def answer(record: dict[str, Any]) -> str:
    """The retail environment plus a gold dialogue, as the synthesizer would write them."""
    return synthesizer_reply(reference_environment("retail"), record)


def diverging_answer() -> str:
    """Gold dialogue 0, but the model wrote a wrong order total in a tool output."""
    record = gold(0)
    message = record["messages"][7]
    message["content"] = message["content"].replace("137.5", "99.0")
    assert "99.0" in message["content"]
    return answer(record)


def settings(*, execute: bool = True, judge: bool = True, attempts: int = 3) -> Settings:
    return Settings(
        model=ModelSettings(retry_initial_s=0.01, retry_max_s=0.02, max_transport_retries=1),
        pipeline=PipelineSettings(execute=execute, judge=judge),
        attempts=AttemptSettings(synthesizer=attempts),
    )


@needs_sandbox
async def test_a_diverging_dialogue_is_repaired_from_execution_feedback() -> None:
    model = make_model(
        {
            ("synthesizer", "shop"): [diverging_answer(), answer(gold(0))],
            ("judge", "shop"): JUDGE_OK,
        }
    )
    async with Sandbox(settings().sandbox) as sandbox:
        graph = build_synthesizer_graph(llm=model, settings=settings(), sandbox=sandbox)
        out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    assert out["rejects"] == [], out["rejects"]
    [record] = out["records"]

    calls = model.calls_for("synthesizer")
    assert len(calls) == 2
    assert INSTRUCTION in calls[0].prompt_text and TEXT.strip() in calls[0].prompt_text
    assert "Feedback" not in calls[0].prompt_text
    feedback = calls[1].prompt_text
    assert "[output_mismatch]" in feedback
    assert "137.5" in feedback  # the real output is shown to the model
    assert len(model.calls) == 3  # two generations and one judge call, nothing else

    assert record["provenance"]["mode"] == "synthesizer"
    assert record["provenance"]["prompts"]["synthesizer"].startswith("synthesizer@")
    assert record["messages"] == gold(0)["messages"]
    verification = record["verification"]
    assert verification["deterministic"] is True
    assert verification["final_state_sha256"] == gold(0)["verification"]["final_state_sha256"]
    assert record["judge"]["passed"] is True
    assert record["usage"]["synthesizer"]["calls"] == 2
    assert record["usage"]["total"]["calls"] == 3
    [env] = out["environments"]
    assert env["tools_py"] == reference_environment("retail").tools_py
    assert record["environment"]["name"] == "env_shop"


@needs_sandbox
async def test_a_crashing_tool_is_reported_before_the_replay() -> None:
    broken = answer(gold(0)).replace(
        "def get_customer_orders(db, customer_id):",
        "def get_customer_orders(db, customer_id):\n    {}['missing']",
        1,
    )
    model = make_model({("synthesizer", "shop"): broken})
    chosen = settings(attempts=2, judge=False)
    async with Sandbox(chosen.sandbox) as sandbox:
        graph = build_synthesizer_graph(llm=model, settings=chosen, sandbox=sandbox)
        out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    [reject] = out["rejects"]
    assert (reject["stage"], reject["attempts"], reject["code"]) == (
        "synthesizer",
        2,
        "environment_crash",
    )
    assert "KeyError" in model.calls_for("synthesizer")[1].prompt_text


async def test_an_unreadable_answer_gets_parser_feedback_then_succeeds_without_execution() -> None:
    truncated = answer(gold(0))[:-2000]
    model = make_model({("synthesizer", "shop"): ["Sure! Here it is:", truncated, answer(gold(0))]})
    graph = build_synthesizer_graph(llm=model, settings=settings(execute=False, judge=False))
    out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    assert out["rejects"] == []
    [record] = out["records"]
    prompts = [c.prompt_text for c in model.calls_for("synthesizer")]
    assert "<tools> is missing" in prompts[1]
    assert "<messages> is not closed" in prompts[2]
    assert record["verification"] is None
    assert record["provenance"]["mode"] == "synthesizer"
    [env] = out["environments"]
    target, problems = parse_target(answer(gold(0)))
    assert problems == [] and target is not None
    assert env["schema_sql"] == target["environment"]["schema_sql"]
    assert record["tools"] == target["tools"]


async def test_attempts_run_out_into_a_reject_record() -> None:
    model = make_model({("synthesizer", "shop"): "no tags at all"})
    graph = build_synthesizer_graph(llm=model, settings=settings(execute=False, attempts=2))
    out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    assert out["records"] == []
    [reject] = out["rejects"]
    assert (reject["stage"], reject["attempts"], reject["code"]) == (
        "synthesizer",
        2,
        "invalid_output",
    )
    assert reject["usage"]["synthesizer"]["calls"] == 2


class Overloaded(Exception):
    status_code = 503


async def test_transport_errors_are_retried_then_rejected_not_raised() -> None:
    model = make_model({("synthesizer", "shop"): Overloaded("server busy")})
    graph = build_synthesizer_graph(llm=model, settings=settings(execute=False))
    out = await graph.ainvoke({"document": {"id": "shop", "text": TEXT}})
    [reject] = out["rejects"]
    assert (reject["stage"], reject["code"]) == ("synthesizer", "transport")
    assert len(model.calls) == 2  # one try plus one retry; neither counts as an attempt


async def test_bad_input_is_rejected_at_intake() -> None:
    model = make_model({})
    graph = build_synthesizer_graph(llm=model, settings=settings(execute=False))
    out = await graph.ainvoke({"document": {"id": "empty", "text": "   "}})
    [reject] = out["rejects"]
    assert (reject["stage"], reject["code"]) == ("intake", "invalid_input")
    assert model.calls == []


def test_the_factory_validates_eagerly_and_names_the_graph() -> None:
    with pytest.raises(TypeError):
        build_synthesizer_graph(llm="gpt-4o")  # type: ignore[arg-type]
    unsafe = Settings(sandbox={"tier": "none"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow_unsafe_none"):
        build_synthesizer_graph(llm=make_model({}), settings=unsafe)
    graph = build_synthesizer_graph(llm=make_model({}), settings=settings(execute=False))
    assert graph.name == "gem_synthesizer"
    assert graph.checkpointer is None
    assert set(graph.get_input_jsonschema()["properties"]) == {"document"}
    assert set(graph.get_output_jsonschema()["properties"]) == {
        "records",
        "rejects",
        "usage",
        "environments",
    }
