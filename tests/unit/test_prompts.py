"""The shipped stage prompts load, expect exactly the variables their stage fills, and render."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from gem_graph.prompts import load_prompt, parse_prompt
from gem_graph.schemas import (
    ExtractOutput,
    FilterOutput,
    ImplementOutput,
    JudgeOutput,
    TrajectoryOutput,
)

STAGES: dict[str, tuple[set[str], type[BaseModel]]] = {
    "filter": ({"text", "output_schema", "feedback"}, FilterOutput),
    "extract": ({"text", "labels", "output_schema", "feedback"}, ExtractOutput),
    "implement": (
        {"text", "tools", "workflows", "rules", "examples", "output_schema", "feedback"},
        ImplementOutput,
    ),
    "ground": (
        {
            "text",
            "tools",
            "workflows",
            "rules",
            "environment",
            "confirm_before",
            "min_patterns",
            "output_schema",
            "feedback",
        },
        TrajectoryOutput,
    ),
    "refine": (
        {
            "text",
            "tools",
            "rules",
            "environment",
            "confirm_before",
            "trajectory",
            "scenario",
            "min_patterns",
            "output_schema",
            "feedback",
        },
        TrajectoryOutput,
    ),
    "judge": (
        {
            "tools",
            "rules",
            "policy",
            "confirm_before",
            "trajectory",
            "rule_findings",
            "output_schema",
            "feedback",
        },
        JudgeOutput,
    ),
}

FEEDBACK = "Your previous attempt had these problems:\n- [turn_order] msg 3: user after tool"


def _render(stage: str) -> tuple[list[dict[str, str]], str]:
    """Render `stage` with the real output schema and a placeholder for every other variable."""
    variables, model = STAGES[stage]
    prompt = load_prompt(stage)
    schema = json.dumps(model.model_json_schema(), indent=2)
    values = {name: f"<<{name} value>>" for name in variables}
    values["output_schema"] = schema
    values["feedback"] = FEEDBACK
    return prompt.render(**values), schema


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_prompt_loads_with_name_and_version(stage: str) -> None:
    prompt = load_prompt(stage)
    assert prompt.name == stage
    assert prompt.version >= 1
    assert prompt.key == f"{stage}@{prompt.version}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_prompt_expects_exactly_the_stage_variables(stage: str) -> None:
    assert load_prompt(stage).variables() == STAGES[stage][0]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_render_includes_schema_and_ends_with_feedback(stage: str) -> None:
    messages, schema = _render(stage)
    assert [m["role"] for m in messages] == ["system", "user"]
    text = messages[0]["content"] + messages[1]["content"]
    assert schema in text
    assert "ONE JSON object" in text
    assert messages[1]["content"].endswith(FEEDBACK)
    for name in STAGES[stage][0] - {"output_schema", "feedback"}:
        assert f"<<{name} value>>" in text


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_render_leaves_no_stray_dollar(stage: str) -> None:
    """Every "$" in the rendered text comes from an escaped "$$" in the file."""
    prompt = load_prompt(stage)
    messages = prompt.render(**{name: f"<<{name}>>" for name in STAGES[stage][0]})
    rendered = sum(m["content"].count("$") for m in messages)
    escaped = prompt.system.template.count("$$") + prompt.user.template.count("$$")
    assert rendered == escaped


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_prompt_describes_every_output_field(stage: str) -> None:
    """Some servers ignore the JSON Schema, so each field must also be named in the text."""
    prompt = load_prompt(stage)
    for field in STAGES[stage][1].model_fields:
        assert f"`{field}`" in prompt.system.template, field


def test_empty_feedback_renders_cleanly() -> None:
    prompt = load_prompt("filter")
    messages = prompt.render(text="Open the app.", output_schema="{}", feedback="")
    assert messages[1]["content"].endswith("TEXT>>>")


def test_missing_variable_raises_key_error() -> None:
    with pytest.raises(KeyError):
        load_prompt("filter").render(text="x", output_schema="{}")


GOOD = (
    '+++\nname = "demo"\nversion = 2\ndescription = "d"\n+++\n'
    "<<<system>>>\nS $a\n<<<user>>>\nU $$5 $b\n"
)


def test_parse_prompt_accepts_a_well_formed_file() -> None:
    prompt = parse_prompt(GOOD)
    assert (prompt.name, prompt.version) == ("demo", 2)
    assert prompt.variables() == {"a", "b"}
    assert prompt.render(a="1", b="2")[1]["content"] == "U $5 2"


@pytest.mark.parametrize(
    "source",
    [
        "<<<system>>>\nS\n<<<user>>>\nU\n",
        'intro\n+++\nname = "x"\nversion = 1\n+++\n<<<system>>>\nS\n<<<user>>>\nU\n',
        '+++\nname = "x"\nversion = 1\n+++\n<<<system>>>\nonly a system section\n',
        '+++\nname = "x"\nversion = 1\n+++\n<<<user>>>\nonly a user section\n',
        "+++\nversion = 1\n+++\n<<<system>>>\nS\n<<<user>>>\nU\n",
        '+++\nname = "x"\n+++\n<<<system>>>\nS\n<<<user>>>\nU\n',
    ],
    ids=[
        "no-front-matter",
        "text-before-front-matter",
        "no-user",
        "no-system",
        "no-name",
        "no-version",
    ],
)
def test_parse_prompt_rejects_malformed_files(source: str) -> None:
    with pytest.raises(ValueError):
        parse_prompt(source)
