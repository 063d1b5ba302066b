"""The synthesizer's target document: exact round trip, and problems (never exceptions) on junk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gem_graph.environment import load_environment
from gem_graph.prompts import load_prompt
from gem_graph.synthesizer import (
    INSTRUCTION,
    SECTIONS,
    SynthTarget,
    TargetFormatError,
    parse_target,
    render_target,
    target_from_parts,
)

ENVIRONMENTS = Path(__file__).resolve().parents[2] / "environments"


def gold_targets() -> list[tuple[str, SynthTarget]]:
    out = []
    for name in ("retail", "clinic"):
        env = load_environment(ENVIRONMENTS / name)
        for line in (ENVIRONMENTS / name / "trajectories.jsonl").read_text().splitlines():
            record = json.loads(line)
            target = target_from_parts(
                tools=record["tools"],
                schema_sql=env.schema_sql,
                seed=env.seed,
                tools_py=env.tools_py,
                policy=env.policy,
                read_only_tools=env.manifest.read_only_tools,
                scenario=record["scenario"],
                messages=record["messages"],
            )
            out.append((record["id"], target))
    return out


GOLD = gold_targets()


@pytest.mark.parametrize(("record_id", "target"), GOLD, ids=[g[0] for g in GOLD])
def test_every_gold_trajectory_reads_back_exactly(record_id: str, target: SynthTarget) -> None:
    text = render_target(target)
    parsed, problems = parse_target(text)
    assert problems == []
    assert parsed == target


def test_code_is_raw_not_json_escaped() -> None:
    _, target = GOLD[0]
    text = render_target(target)
    first_def = next(
        line for line in target["environment"]["tools_py"].splitlines() if line.startswith("def ")
    )
    assert f"\n{first_def}\n" in text
    assert text.index("<tools>") < text.index("<tools_py>") < text.index("<messages>")


def test_edge_values_round_trip() -> None:
    """Leading and trailing blank lines, unicode, empty seed tables and a dated scenario."""
    target: SynthTarget = target_from_parts(
        tools=[
            {"type": "function", "function": {"name": "t", "description": "é", "parameters": {}}}
        ],
        schema_sql="\n\nCREATE TABLE a (id TEXT PRIMARY KEY);\n\n",
        seed={"a": [], "b": [{"id": "x", "note": 'line1\nline2 </seed> "q"'}]},
        tools_py="def t(db):\n    return '<messages>'\n",
        policy="",
        read_only_tools=[],
        scenario={"now": "2025-03-01T10:00:00+01:00", "rows": {"a": [{"id": "ü"}]}},
        messages=[{"role": "system", "content": "ok\n\nmulti"}, {"role": "user", "content": ""}],
    )
    assert parse_target(render_target(target)) == (target, [])


def test_windows_newlines_and_a_think_block_are_tolerated() -> None:
    _, target = GOLD[-1]
    text = "<think>plan…</think>\n" + render_target(target)
    parsed, problems = parse_target(text)
    assert problems == [] and parsed == target
    crlf = render_target(target).replace("</tools>", "\r\n</tools>")
    parsed, problems = parse_target(crlf)
    assert problems == [] and parsed is not None
    assert parsed["tools"] == target["tools"]


def test_code_that_would_end_its_section_cannot_be_rendered() -> None:
    _, target = GOLD[0]
    bad = {**target, "environment": {**target["environment"], "tools_py": "<scenario>\nx = 1"}}
    with pytest.raises(TargetFormatError):
        render_target(bad)  # type: ignore[arg-type]


GARBAGE: list[Any] = [
    "",
    "I cannot help with that.",
    "{}",
    None,
    42,
    "<tools>\n" * 3,
    '<messages>\n{"role": "user"}\n</messages>',
    "</tools><tools>",
    "<tools>\n[[[[[[[[[[" + "[" * 100_000 + "\n</tools>",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_gives_problems_not_exceptions(text: Any) -> None:
    parsed, problems = parse_target(text)
    assert parsed is None
    assert problems
    assert all(p["code"] == "invalid_output" and p["message"] for p in problems)


def test_a_missing_section_is_named() -> None:
    _, target = GOLD[0]
    text = render_target(target)
    start, end = text.index("<seed>"), text.index("</seed>") + len("</seed>\n")
    parsed, problems = parse_target(text[:start] + text[end:])
    assert parsed is None
    assert [p["where"] for p in problems] == ["seed"]
    assert "<seed> is missing" in problems[0]["message"]


def test_a_truncated_answer_points_at_the_unclosed_section() -> None:
    _, target = GOLD[0]
    text = render_target(target)
    cut = text[: text.index("</messages>") - 40]
    parsed, problems = parse_target(cut)
    assert parsed is None
    assert [p["where"] for p in problems] == ["messages"]
    assert "not closed" in problems[0]["message"]


def test_a_broken_json_line_is_located() -> None:
    _, target = GOLD[0]
    text = render_target(target).replace('{"role": "user"', '{"role": "user",,', 1)
    parsed, problems = parse_target(text)
    assert parsed is None
    [found] = problems
    assert found["where"] == "messages"
    assert found["message"].startswith("line 2 is not one complete JSON message object")


@pytest.mark.parametrize(
    ("section", "content", "expected"),
    [
        ("scenario", '{"now": 5, "rows": {}}', "now must be"),
        ("scenario", '{"now": null, "rows": []}', "rows must be"),
        ("read_only_tools", '{"a": 1}', "JSON array"),
        ("seed", '{"a": 1}', "list of row objects"),
        ("tools", "[1, 2]", "must be a JSON object"),
    ],
)
def test_wrong_shapes_are_explained(section: str, content: str, expected: str) -> None:
    _, target = GOLD[0]
    text = render_target(target)
    start = text.index(f"<{section}>\n") + len(f"<{section}>\n")
    end = text.index(f"\n</{section}>")
    parsed, problems = parse_target(text[:start] + content + text[end:])
    assert parsed is None
    assert any(p["where"] == section and expected in p["message"] for p in problems), problems


def test_the_prompt_states_every_section_and_ends_with_feedback() -> None:
    prompt = load_prompt("synthesizer")
    assert prompt.variables() == {"instruction", "text", "feedback"}
    messages = prompt.render(instruction=INSTRUCTION, text="T", feedback="FEEDBACK")
    system = messages[0]["content"]
    for section in SECTIONS:
        assert f"<{section}>" in system and f"</{section}>" in system
    assert messages[1]["content"].startswith(INSTRUCTION)
    assert messages[1]["content"].endswith("FEEDBACK")
    assert "$" not in messages[0]["content"] + messages[1]["content"]
