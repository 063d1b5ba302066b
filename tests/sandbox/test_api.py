"""The sandbox's public API as callers use it, and the tool runtime."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import warnings
from datetime import UTC, datetime

import pytest
from sandbox_helpers import make_db, test_settings

from gem_graph import runtime
from gem_graph.sandbox import (
    EpisodeClosed,
    InvalidDatabase,
    Sandbox,
    SandboxUnavailable,
    probe,
)

TOOLS = '''
from gem_graph.runtime import ToolError, now, new_id, rng


def add_item(db, name: str, qty: int = 1, *, note=None):
    """Insert a row and describe it."""
    item_id = new_id("item")
    db.execute("INSERT INTO t (id, name) VALUES (?, ?)", (1000 + qty, name))
    return {"id": item_id, "at": now().isoformat(), "roll": rng().randint(1, 10**9)}


def get_item(db, item_id: int, **extra):
    row = db.execute("SELECT name FROM t WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise ToolError(f"item {item_id} not found")
    return {"name": row[0]}


def half_write(db):
    db.execute("INSERT INTO t (id, name) VALUES (555, 'partial')")
    raise ToolError("rule violated")


def _private(db):
    return 1


def not_a_tool(x):
    return x
'''


def rows(db: bytes) -> list[tuple[int, str]]:
    con = sqlite3.connect(":memory:")
    con.deserialize(db)
    return con.execute("SELECT id, name FROM t ORDER BY id").fetchall()


async def test_load_lists_tool_functions(sandbox: Sandbox) -> None:
    async with await sandbox.open_episode(TOOLS, make_db()) as ep:
        loaded = await ep.load()
    assert loaded == {
        "ok": True,
        "functions": {
            "add_item": {"parameters": ["name", "qty", "note"], "required": ["name"],
                         "accepts_var_kwargs": False},
            "get_item": {"parameters": ["item_id"], "required": ["item_id"],
                         "accepts_var_kwargs": True},
            "half_write": {"parameters": [], "required": [], "accepts_var_kwargs": False},
        },
    }  # fmt: skip


async def test_tool_modifies_db_and_returns_json(sandbox: Sandbox) -> None:
    ep = await sandbox.open_episode(TOOLS, make_db(), now="2026-03-04T05:06:07+02:00", seed=7)
    first = await ep.call("add_item", {"name": "lamp", "qty": 2})
    second = await ep.call("add_item", {"name": "desk"})
    assert first["status"] == "ok" and second["status"] == "ok"
    assert [first["result"]["id"], second["result"]["id"]] == ["item_1", "item_2"]
    assert first["result"]["at"] == "2026-03-04T05:06:07+02:00"
    found = await ep.call("get_item", {"item_id": 1002})
    assert found["result"] == {"name": "lamp"} and found["error"] is None
    db = await ep.snapshot()
    assert (1002, "lamp") in rows(db) and (1001, "desk") in rows(db)
    assert ep.isolation["tier"] == sandbox.settings.tier
    assert ep.isolation["seccomp"] is True and ep.isolation["landlock"] >= 1
    await ep.close()
    await ep.close()  # idempotent


async def test_tool_error_and_rollback(sandbox: Sandbox) -> None:
    async with await sandbox.open_episode(TOOLS, make_db()) as ep:
        missing = await ep.call("get_item", {"item_id": 404})
        assert missing["status"] == "tool_error"
        assert missing["error"] == "item 404 not found" and missing["error_type"] == "ToolError"
        failed = await ep.call("half_write", {})
        assert failed["status"] == "tool_error"
        assert (555, "partial") not in rows(await ep.snapshot())


async def test_same_seed_same_outputs(sandbox: Sandbox) -> None:
    async def replay(seed: int) -> list[object]:
        async with await sandbox.open_episode(TOOLS, make_db(), seed=seed) as ep:
            results = [await ep.call("add_item", {"name": "a"}) for _ in range(3)]
            return [r["result"] for r in results] + [rows(await ep.snapshot())]

    first, again, other = await replay(3), await replay(3), await replay(4)
    assert first == again
    assert first != other
    assert first[0]["at"] == "2025-01-01T09:00:00+00:00"  # type: ignore[index]


def test_runtime_helpers_in_process() -> None:
    runtime._configure(None, 5)
    assert runtime.now() == datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    assert [runtime.new_id("o"), runtime.new_id("o"), runtime.new_id("u")] == ["o_1", "o_2", "u_1"]
    seq = [runtime.rng().random() for _ in range(3)]
    runtime._configure("2030-05-06T07:08:09", 5)
    assert runtime.now().tzinfo is not None and runtime.now().year == 2030
    assert runtime.new_id("o") == "o_1"
    assert [runtime.rng().random() for _ in range(3)] == seq
    assert str(runtime.ToolError("boom")) == "boom"


async def test_syntax_error_reported_by_load(sandbox: Sandbox) -> None:
    async with await sandbox.open_episode("def f(db) return 1\n", make_db()) as ep:
        loaded = await ep.load()
        assert loaded["ok"] is False and loaded["error_type"] == "SyntaxError"
        call = await ep.call("f", {})
        assert call["status"] == "error" and call["error_type"] == "SyntaxError"


async def test_non_json_return_is_an_environment_error(sandbox: Sandbox) -> None:
    src = "def conn(db):\n    return db\n\ndef nan(db):\n    return float('nan')\n"
    async with await sandbox.open_episode(src, make_db()) as ep:
        for name in ("conn", "nan"):
            r = await ep.call(name, {})
            assert r["status"] == "error" and r["error_type"] == "TypeError", r
        assert (await ep.call("conn", {}))["status"] == "error"  # the episode lives on


async def test_tool_code_cannot_change_the_schema(sandbox: Sandbox) -> None:
    src = "def t(db):\n    db.execute('CREATE TRIGGER x AFTER DELETE ON t BEGIN SELECT 1; END')\n"
    async with await sandbox.open_episode(src, make_db()) as ep:
        before = await ep.state()
        result = await ep.call("t", {})
        assert result["status"] == "error" and "not authorized" in str(result["error"]), result
        assert await ep.state() == before


async def test_fatal_status_is_sticky(tier: str) -> None:
    async with Sandbox(test_settings(tier, call_timeout_s=5, cpu_seconds=1)) as sb:
        ep = await sb.open_episode("def spin(db):\n    while True:\n        pass\n", make_db())
        first = await ep.call("spin", {})
        assert first["status"] == "cpu_limit", first
        second = await ep.call("spin", {})
        assert second["status"] == "cpu_limit" and second["elapsed_ms"] < 100
        assert (await ep.load())["ok"] is False
        with pytest.raises(EpisodeClosed):
            await ep.snapshot()


async def test_invalid_input_database_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidDatabase):
        await sandbox.open_episode("", b"not a database at all, definitely not")


async def test_fresh_worker_mode(tier: str) -> None:
    async with Sandbox(test_settings(tier, fork_server=False, prestart=1)) as sb:
        eps = await asyncio.gather(*(sb.open_episode(TOOLS, make_db()) for _ in range(3)))
        for ep in eps:
            r = await ep.call("add_item", {"name": "x"})
            assert r["status"] == "ok" and r["result"]["id"] == "item_1"
            assert ep.isolation["fork_server"] is False
            await ep.close()


async def test_aclose_leaves_no_processes(tier: str) -> None:
    # Other tests may leave helpers of their own (e.g. multiprocessing's resource tracker).
    before = set(_descendants(os.getpid()))
    sb = Sandbox(test_settings(tier, prestart=2))
    ep = await sb.open_episode(TOOLS, make_db())
    await asyncio.sleep(0.2)  # let the pre-started workers come up
    pids = [ep.pid]
    zygote = sb._zygote
    assert zygote is not None and zygote.proc is not None
    pids.append(zygote.proc.pid)
    await ep.close()
    await sb.aclose()
    await asyncio.sleep(0.3)
    children = [pid for pid in _descendants(os.getpid()) if pid not in before]
    assert not children, f"processes left behind: {children}"
    for pid in pids:
        assert pid is None or not os.path.exists(f"/proc/{pid}") or _zombie(pid)


async def test_tier_none_requires_opt_in_and_says_so_once(caplog) -> None:
    with pytest.raises(SandboxUnavailable, match="allow_unsafe_none"):
        await Sandbox(test_settings("none")).open_episode("def f(db):\n    return 1\n", make_db())
    async with Sandbox(test_settings("none", allow_unsafe_none=True)) as sb:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a notice, not a raw RuntimeWarning
            ep = await sb.open_episode("def f(db):\n    return 1\n", make_db())
            await (await sb.open_episode("def f(db):\n    return 1\n", make_db())).close()
        said = [r.getMessage() for r in caplog.records if 'tier "none"' in r.getMessage()]
        assert said == ['sandbox tier "none": untrusted tool code runs with rlimits only']
        assert (await ep.call("f", {}))["result"] == 1
        assert ep.isolation["seccomp"] is False and ep.isolation["landlock"] == 0
        await ep.close()


def test_probe_shape() -> None:
    info = probe()
    assert set(info["tiers"]) == {"strict", "standard", "none"}
    assert info["tiers"]["none"] is True
    assert isinstance(info["landlock_abi"], int)
    assert probe() is info  # cached


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


SET_ORDER_TOOL = """
def words(db):
    return list({"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"})
"""


async def test_set_iteration_order_is_the_same_in_every_worker_and_sandbox(tier: str) -> None:
    """Replays in another process (or next year) must see the order the record saw."""
    orders = []
    for fork_server in (True, False):
        settings = test_settings(tier, fork_server=fork_server, prestart=0)
        async with (
            Sandbox(settings) as sb,
            await sb.open_episode(SET_ORDER_TOOL, make_db()) as ep,
        ):
            orders.append((await ep.call("words", {}))["result"])
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == sorted(set(orders[0])) and len(orders[0]) == 8


async def test_an_episode_has_a_total_time_budget(tier: str) -> None:
    """Sleeping just under the per-call deadline, call after call, still ends the episode."""
    settings = test_settings(tier, call_timeout_s=1.0, episode_timeout_s=2.0)
    async with Sandbox(settings) as sb:
        ep = await sb.open_episode("import time\ndef nap(db):\n    time.sleep(0.7)\n", make_db())
        statuses = [(await ep.call("nap", {}))["status"] for _ in range(4)]
        assert statuses[:2] == ["ok", "ok"] and statuses[-1] == "timeout", statuses
        assert ep.dead
        await ep.close()
