"""The hand-written reference environments and their gold trajectories, replayed for real."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gem_graph.checks.environment import check_signatures
from gem_graph.checks.lint import lint_tool_code
from gem_graph.environment import (
    build_database,
    database_bytes,
    environment_ref,
    load_environment,
    save_environment,
    state_hash,
)
from gem_graph.resources import data_dir
from gem_graph.sandbox import Sandbox
from gem_graph.settings import SandboxSettings
from gem_graph.verify import verify_trajectory

ENVIRONMENTS = data_dir("environments")
NAMES = ("retail", "clinic", "banking")


def gold(name: str) -> list[dict]:
    lines = (ENVIRONMENTS / name / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


GOLD = [(name, record) for name in NAMES for record in gold(name)]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxSettings(tier="standard")) as box:
        yield box


@pytest.mark.parametrize(("name", "record"), GOLD, ids=[r["id"] for _, r in GOLD])
async def test_gold_trajectory_verifies_with_its_expected_final_state(
    name: str, record: dict, sandbox: Sandbox
) -> None:
    env = load_environment(ENVIRONMENTS / name)
    assert record["environment"] == environment_ref(env)
    result = await verify_trajectory(
        environment=env,
        messages=record["messages"],
        tools=record["tools"],
        scenario=record["scenario"],
        sandbox=sandbox,
    )
    assert result["problems"] == []
    assert result["ok"] is True
    verification = result["verification"]
    assert verification["final_state_sha256"] == record["verification"]["final_state_sha256"]
    assert verification["state_diff"] == record["verification"]["state_diff"]
    assert verification["calls"] == record["verification"]["calls"]
    assert verification["deterministic"] is True
    assert verification["isolation"]["tier"] == "standard"
    # The written outputs already are the real ones, so nothing was rewritten.
    assert result["messages"] == record["messages"]


@pytest.mark.parametrize("name", NAMES)
def test_each_environment_has_enough_gold_covering_reads_and_writes(name: str) -> None:
    env = load_environment(ENVIRONMENTS / name)
    records = gold(name)
    assert len(records) >= 3
    called = {c["tool"] for r in records for c in r["verification"]["calls"]}
    writes = set(env.manifest.tool_names) - set(env.manifest.read_only_tools)
    assert called & writes and called & set(env.manifest.read_only_tools)
    assert any(c["status"] == "tool_error" for r in records for c in r["verification"]["calls"])
    for record in records:
        assert 8 <= len(record["messages"]) <= 30
        assert record["source"] == {
            "doc_id": "hand-written",
            "text_sha256": None,
            "labels": record["source"]["labels"],
        }


@pytest.mark.parametrize("name", NAMES)
def test_environment_round_trips_through_save_and_load(name: str, tmp_path: Path) -> None:
    env = load_environment(ENVIRONMENTS / name)
    copy = load_environment(save_environment(env, tmp_path / name))
    assert copy == env
    assert copy.content_hash() == env.content_hash()


@pytest.mark.parametrize("name", NAMES)
def test_content_hash_is_stable_and_sensitive(name: str, tmp_path: Path) -> None:
    env = load_environment(ENVIRONMENTS / name)
    assert load_environment(ENVIRONMENTS / name).content_hash() == env.content_hash()
    folder = save_environment(env, tmp_path / name)
    tools = folder / "tools.py"
    tools.write_text(tools.read_text() + "\n# a comment changes the code\n")
    assert load_environment(folder).content_hash() != env.content_hash()


@pytest.mark.parametrize("name", NAMES)
def test_seed_builds_and_read_only_tools_are_declared(name: str) -> None:
    env = load_environment(ENVIRONMENTS / name)
    conn = build_database(env.schema_sql, env.seed)
    assert len(state_hash(conn)) == 64
    assert 6 <= len(env.tools) <= 12
    assert env.manifest.read_only_tools and env.policy


@pytest.mark.parametrize("name", NAMES)
async def test_tool_code_passes_the_lint_and_matches_the_declared_tools(
    name: str, sandbox: Sandbox
) -> None:
    env = load_environment(ENVIRONMENTS / name)
    assert lint_tool_code(env.tools_py) == []
    db = database_bytes(build_database(env.schema_sql, env.seed))
    episode = await sandbox.open_episode(env.tools_py, db)
    try:
        load = await episode.load()
    finally:
        await episode.close()
    assert load["ok"] is True
    assert check_signatures(load["functions"], env.tools) == []
