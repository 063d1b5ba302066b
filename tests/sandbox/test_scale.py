"""The sandbox at scale: a thousand episodes in flight, and a fork server killed under load."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from sandbox_helpers import test_settings

from gem_graph.sandbox import Sandbox, probe, retry_infrastructure

SOURCE = (
    "from gem_graph.runtime import new_id\n"
    "def add(db, x):\n"
    "    db.execute('INSERT INTO t(x) VALUES (?)', (x,))\n"
    "    return {'id': new_id('t'), 'n': db.execute('SELECT count(*) FROM t').fetchone()[0]}\n"
)
DATABASE = {"schema_sql": "CREATE TABLE t(x INTEGER)", "seed": {"t": [{"x": 0}]}}

pytestmark = pytest.mark.skipif(
    probe()["tiers"]["standard"] is not True, reason="the standard tier is unavailable"
)


def settings(**overrides: object):  # type: ignore[no-untyped-def]
    return test_settings(
        "standard", call_timeout_s=60, episode_timeout_s=600, build_timeout_s=60, **overrides
    )


async def test_a_thousand_episodes_in_flight_at_once_all_complete() -> None:
    """Every episode is open before any closes: 2,000 processes, no lost work."""
    count = 1000
    opened = 0
    everyone = asyncio.Event()

    async def episode(sandbox: Sandbox, x: int) -> dict:
        nonlocal opened
        ep = await sandbox.open_episode(SOURCE, DATABASE)  # type: ignore[arg-type]
        try:
            assert (await ep.load())["ok"]
            first = await ep.call("add", {"x": x})
            opened += 1
            if opened == count:
                everyone.set()
            await everyone.wait()
            second = await ep.call("add", {"x": x})
            return {"first": first["result"], "second": second["result"]}
        finally:
            await ep.close()

    async with Sandbox(settings()) as sandbox:
        results = await asyncio.wait_for(
            asyncio.gather(*(episode(sandbox, x) for x in range(count))), 240
        )
    assert all(r == {"first": {"id": "t_1", "n": 2}, "second": {"id": "t_2", "n": 3}}
               for r in results)  # fmt: skip


def _fork_servers() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if (
            b"worker.py" in cmdline
            and b"zygote" in cmdline
            and stat.rsplit(")", 1)[1].split()[1] == me
        ):
            found.append(int(entry))
    return found


async def test_killing_the_fork_server_under_load_loses_no_trajectory() -> None:
    """Episodes lost with the fork server are infrastructure failures, retried elsewhere."""

    async def trajectory(sandbox: Sandbox, x: int) -> list:
        async def once() -> list:
            async with await sandbox.open_episode(SOURCE, DATABASE) as ep:  # type: ignore[arg-type]
                assert (await ep.load())["ok"]
                out = []
                for _ in range(3):
                    result = await ep.call("add", {"x": x})
                    assert result["status"] == "ok", result
                    out.append(result["result"])
                    await asyncio.sleep(0.01)
                return out

        return await retry_infrastructure(once, attempts=5)

    async def killer() -> int:
        kills = 0
        for _ in range(2):
            await asyncio.sleep(0.4)
            for pid in _fork_servers():
                os.kill(pid, signal.SIGKILL)
                kills += 1
        return kills

    async with Sandbox(settings(prestart=4)) as sandbox:
        work = asyncio.gather(*(trajectory(sandbox, x) for x in range(120)))
        kills, results = await asyncio.gather(killer(), asyncio.wait_for(work, 120))
    assert kills >= 1
    expected = [{"id": f"t_{i}", "n": i + 1} for i in (1, 2, 3)]
    assert all(r == expected for r in results)
