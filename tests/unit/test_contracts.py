"""The contract as types: schema files in step with the types, and one way to build a reject."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

from gem_graph.contracts import (
    REJECT_ADAPTER,
    SCHEMA_DIR,
    closed_schema,
    load_schema,
    make_reject,
    schema_texts,
)
from gem_graph.records import build_reject
from gem_graph.resources import data_dir

REPLAYED_PARTS = ("id", "environment", "scenario", "tools", "messages", "verification")
"""The parts of a record that `gem-graph verify` and the exports read."""


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = closed_schema(load_schema(name))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(schema_texts()))
def test_the_committed_schema_files_are_generated_from_the_types(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == schema_texts()[name], (
        f"{name} is stale: run `python -m gem_graph.contracts` and commit the result"
    )


def test_the_regenerate_command_checks_the_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gem_graph.contracts", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_make_reject_makes_the_reason_the_one_problem_by_default() -> None:
    reject = make_reject("doc-1", "input", "invalid_input", "not JSON", where="input")
    assert reject == {
        "doc_id": "doc-1",
        "stage": "input",
        "attempts": 0,
        "code": "invalid_input",
        "reason": "not JSON",
        "problems": [{"code": "invalid_input", "message": "not JSON", "where": "input"}],
        "usage": {},
    }
    validator("reject.schema.json").validate(reject)


USAGE = [{"stage": "filter", "calls": 1, "input_tokens": 10, "output_tokens": 2, "seconds": 0.1}]


@pytest.mark.parametrize(
    "state",
    [
        {  # a node refused the document
            "document": {"id": "d"},
            "stage": "filter",
            "reject_reason": {"code": "irrelevant", "reason": "a poem"},
            "usage": USAGE,
        },
        {  # a validator loop ran out of attempts
            "document": {"id": "d"},
            "stage": "extract",
            "attempts": {"extract": 3},
            "problems": [{"code": "unknown_tool", "message": "no such tool", "where": "x"}],
        },
        {  # the judge failed it, with its own problems
            "document": {"id": "d"},
            "stage": "judge",
            "reject_reason": {
                "code": "judge_failed",
                "reason": "R3: wrong card",
                "problems": [{"code": "judge_failed", "message": "R3: wrong card", "where": "R3"}],
            },
        },
    ],
)
def test_graph_rejects_match_the_reject_schema(state: dict[str, Any]) -> None:
    reject = build_reject(state)
    validator("reject.schema.json").validate(reject)
    assert REJECT_ADAPTER.validate_python(reject) == reject
    assert reject["problems"] and reject["code"] == reject["problems"][0]["code"]


def gold_records() -> list[Any]:
    found = []
    for path in sorted(data_dir("environments").glob("*/trajectories.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                found.append(pytest.param(path.parent.name, record, id=record["id"]))
    return found


@pytest.mark.parametrize(("env", "record"), gold_records())
def test_gold_trajectories_match_the_record_format_in_their_replayed_parts(
    env: str, record: dict[str, Any]
) -> None:
    """The reference environments' gold trajectories are hand-written, not pipeline output:
    no model ran, so `source`, `stats`, `provenance` and `verification.isolation` are not in
    the pipeline's shape. What verification and the exports read must be.
    """
    schema = closed_schema(load_schema("record.schema.json"))
    schema["$defs"]["Verification"]["required"].remove("isolation")
    schema["required"] = list(REPLAYED_PARTS)
    for part in set(schema["properties"]) - set(REPLAYED_PARTS):
        schema["properties"][part] = {}
    jsonschema.Draft202012Validator(schema).validate(record)
    assert record["environment"]["name"] == env
