"""Exports load where users load them (HF `datasets`), and tasks replay to their expected state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gem_graph.environment import environment_ref, load_environment
from gem_graph.export import export_records, to_task
from gem_graph.resources import data_dir
from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import SandboxSettings
from gem_graph.verify import verify_trajectory


def gold_records() -> list[dict[str, Any]]:
    records = []
    for name in ("retail", "clinic"):
        path = data_dir("environments") / name / "trajectories.jsonl"
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


GOLD = gold_records()


def write(fmt: str, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        assert export_records(GOLD, fmt, out) == len(GOLD)
    return path


def test_openai_export_of_two_environments_loads_in_hf_datasets(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    path = write("openai", tmp_path / "openai.jsonl")
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == len(GOLD)
    assert set(dataset.column_names) == {"id", "messages", "tools", "scenario"}
    for row, record in zip(dataset, GOLD, strict=True):
        assert json.loads(row["tools"]) == record["tools"]
        assert len(row["messages"]) == len(record["messages"])
        for loaded, original in zip(row["messages"], record["messages"], strict=True):
            assert loaded["role"] == original["role"]
            assert loaded["content"] == (original.get("content") or "")
            calls = loaded.get("tool_calls") or []
            assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
                (c["id"], "function", c["function"]["name"])
                for c in original.get("tool_calls") or []
            ]
            for c in calls:
                assert isinstance(json.loads(c["function"]["arguments"]), dict)
            if original["role"] == "tool":
                assert loaded["tool_call_id"] == original["tool_call_id"]


def test_sharegpt_export_loads_in_hf_datasets_with_alternating_roles(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    path = write("sharegpt", tmp_path / "sharegpt.jsonl")
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    assert set(dataset.column_names) == {"conversations", "system", "tools"}
    for row in dataset:
        turns = row["conversations"]
        assert len(turns) % 2 == 0
        for index, turn in enumerate(turns):
            expected = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
            assert turn["from"] in expected
        assert isinstance(json.loads(row["tools"]), list)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    reason = probe()["tiers"].get("standard")
    if reason is not True:
        pytest.skip(f"standard sandbox tier unavailable: {reason}")
    async with Sandbox(SandboxSettings(tier="standard")) as box:
        yield box


@pytest.mark.parametrize("record", GOLD, ids=[r["id"] for r in GOLD])
async def test_a_task_replays_to_its_expected_final_state(record, sandbox):
    task = to_task(record)
    environment = load_environment(data_dir("environments") / task["environment"]["name"])
    assert environment_ref(environment)["sha256"] == task["environment"]["sha256"]
    result = await verify_trajectory(
        environment=environment,
        messages=record["messages"],
        tools=task["tools"],
        scenario=task["scenario"],
        sandbox=sandbox,
        check_determinism=False,
    )
    assert result["ok"], result["problems"]
    assert result["verification"]["final_state_sha256"] == task["expected_final_state_sha256"]
    assert result["verification"]["state_diff"] == task["expected_state_diff"]
