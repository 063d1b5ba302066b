"""Episodes fork from one built database per schema and seed, and stay apart."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from sandbox_helpers import test_settings

from gem_graph.dbstate import build_database, state_hash
from gem_graph.sandbox import (
    DatabaseSpec,
    InvalidDatabase,
    Sandbox,
    SandboxInfrastructureError,
    forkserver,
)

SCHEMA = "CREATE TABLE items (id TEXT PRIMARY KEY, qty INTEGER NOT NULL);"
SEED = {"items": [{"id": f"i{n}", "qty": n} for n in range(50)]}
TOOLS = """
def take(db, item: str):
    db.execute("UPDATE items SET qty = qty - 1 WHERE id = ?", (item,))
    return db.execute("SELECT qty FROM items WHERE id = ?", (item,)).fetchone()[0]


def peek_tracking(db):
    return db.execute("SELECT name FROM sqlite_temp_master").fetchall()


def forge_note(db):
    return db.execute("SELECT _gg_track_note('items', 'i1')").fetchall()
"""


def spec(rows: dict[str, list[dict[str, object]]] | None = None) -> DatabaseSpec:
    return {"schema_sql": SCHEMA, "seed": SEED, "rows": rows}


def expected_hash(rows: dict[str, list[dict[str, object]]] | None, *updates: str) -> str:
    db = build_database(SCHEMA, SEED, rows)
    for sql in updates:
        db.execute(sql)
    return state_hash(db)


async def test_episodes_share_one_build_and_never_each_others_writes(tier: str) -> None:
    async with Sandbox(test_settings(tier)) as sandbox:
        first = await sandbox.open_episode(TOOLS, spec())
        second = await sandbox.open_episode(TOOLS, spec({"items": [{"id": "new", "qty": 9}]}))
        assert len(sandbox._templates._entries) == 1  # one template: same schema and seed
        async with first, second:
            assert (await first.load())["ok"] and (await second.load())["ok"]
            assert (await first.call("take", {"item": "i5"}))["result"] == 4
            assert (await second.call("take", {"item": "i5"}))["result"] == 4  # not 3
            assert (await second.call("take", {"item": "new"}))["result"] == 8
            one, two = await first.state(), await second.state()
        assert one["sha256"] == expected_hash(None, "UPDATE items SET qty = 4 WHERE id = 'i5'")
        assert one["diff"] == {
            "items": {
                "inserted": [],
                "updated": [{"key": {"id": "i5"}, "before": {"qty": 5}, "after": {"qty": 4}}],
                "deleted": [],
            }
        }
        rows = {"items": [{"id": "new", "qty": 9}]}
        assert two["sha256"] == expected_hash(
            rows,
            "UPDATE items SET qty = 4 WHERE id = 'i5'",
            "UPDATE items SET qty = 8 WHERE id = 'new'",
        )
        assert [u["key"] for u in two["diff"]["items"]["updated"]] == [{"id": "i5"}, {"id": "new"}]


async def test_tool_sql_can_neither_see_nor_feed_the_change_tracking(tier: str) -> None:
    async with Sandbox(test_settings(tier)) as sandbox:
        episode = await sandbox.open_episode(TOOLS, spec())
        async with episode:
            assert (await episode.load())["ok"]
            for name in ("peek_tracking", "forge_note"):
                result = await episode.call(name, {})
                assert result["status"] == "error", result
                assert result["error_type"] in ("DatabaseError", "OperationalError"), result
            assert (await episode.state())["diff"] == {}


async def test_an_unbuildable_schema_is_invalid_and_not_remembered(tier: str) -> None:
    async with Sandbox(test_settings(tier)) as sandbox:
        broken: DatabaseSpec = {"schema_sql": "CREATE TABLE (", "seed": {}, "key": "k"}
        for _ in range(2):
            with pytest.raises(InvalidDatabase, match=r"schema\.sql failed"):
                await sandbox.open_episode(TOOLS, broken)
        with pytest.raises(InvalidDatabase, match="unknown table"):
            await sandbox.open_episode(TOOLS, spec({"nope": [{"id": 1}]}))
        async with await sandbox.open_episode(TOOLS, spec()) as episode:
            assert (await episode.load())["ok"]


async def test_a_killed_template_costs_a_retry_not_a_verdict(tier: str) -> None:
    async with Sandbox(test_settings(tier)) as sandbox:
        episode = await sandbox.open_episode(TOOLS, spec())
        [task] = sandbox._templates._entries.values()
        template = task.result()
        assert template.process.pid is not None
        os.kill(template.process.pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        with pytest.raises(SandboxInfrastructureError):  # the machine failed, not the tool
            await episode.call("take", {"item": "i1"})
        fresh = await sandbox.open_episode(TOOLS, spec())  # a new template, transparently
        async with fresh:
            assert (await fresh.load())["ok"]
            assert (await fresh.call("take", {"item": "i1"}))["result"] == 0
        await episode.close()


async def test_idle_templates_past_the_capacity_are_retired(tier: str) -> None:
    async with Sandbox(test_settings(tier, templates=1)) as sandbox:
        seen = []
        for rows in (1, 2, 3):
            other: DatabaseSpec = {"schema_sql": SCHEMA, "seed": {"items": SEED["items"][:rows]}}
            async with await sandbox.open_episode(TOOLS, other) as episode:
                assert (await episode.load())["ok"]
            seen.extend(t.result() for t in sandbox._templates._entries.values())
            await asyncio.sleep(0.2)  # its exit notice arrives: the template is idle
        assert len(sandbox._templates._entries) == 1  # the others were retired
        assert len(set(map(id, seen))) == 3
        assert [t.alive for t in seen[:-1]] == [False, False]
        assert sandbox.reaped_cpu_s > 0


async def test_a_slow_schema_is_invalid_but_a_silent_template_is_the_machines_fault(
    tier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow: DatabaseSpec = {
        "schema_sql": "CREATE TABLE t (n);"  # counts forever without growing the database
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c;",
        "seed": {},
    }
    async with Sandbox(test_settings(tier, build_timeout_s=0.5)) as sandbox:
        with pytest.raises(InvalidDatabase, match="time budget"):  # the template's deadline
            await sandbox.open_episode(TOOLS, slow)

        async def silent(*_: object) -> dict[str, object]:
            await asyncio.sleep(3600)
            return {}

        monkeypatch.setattr(forkserver, "read_frame", silent)
        with pytest.raises(SandboxInfrastructureError, match="did not answer"):
            await sandbox.open_episode(TOOLS, spec())
