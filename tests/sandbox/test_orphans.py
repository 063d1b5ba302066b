"""`gem-graph verify` killed with SIGKILL mid-call leaves no sandbox process behind.

The verify process runs under a small launcher that is a child subreaper, so whatever it
leaves behind is adopted by the launcher instead of init and stays countable. The tool
renames its thread (comm) once its attack is done, which tells the test the call is in
flight; then verify is killed and every process below the launcher must be gone within
a few seconds, whatever the tool did to its own death signal or session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import descendants_of, process_table

import gem_graph

ROOT = Path(gem_graph.__file__).resolve().parent.parent
MARK = "ggo-"
GRACE_S = 3.0

LAUNCHER = """
import ctypes, os, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit('cannot become a child subreaper')
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(proc.pid, flush=True)
while True:  # reap verify and every orphan adopted from below it
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.05)
"""

ATTACKS = {
    "plain": "",
    "nopdeath": "libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none",
    "setsid": "os.setsid()",
    "both": "os.setsid()\nlibc.prctl(1, 0, 0, 0, 0)",
}
"""One tool per attack on the worker's own death signal or session; all run at once."""


def tools_py() -> str:
    parts = ["import ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\n"]
    for name, attack in ATTACKS.items():
        parts.append(
            f"\ndef wait_{name}(db):\n"
            "    try:\n"
            + "".join(f"        {line}\n" for line in attack.splitlines())
            + "        pass\n"
            "    except OSError:\n"
            "        pass\n"
            f"    libc.prctl(15, {(MARK + name).encode()!r}, 0, 0, 0)  # PR_SET_NAME: attack done\n"
            "    time.sleep(60)\n"
            "    return 'woke up'\n"
        )
    return "".join(parts)


def write_environment(folder: Path) -> Path:
    folder.mkdir()
    no_parameters = {"type": "object", "properties": {}, "additionalProperties": False}
    manifest = {
        "name": "orphans",
        "tools": [
            {"type": "function", "function": {"name": f"wait_{name}", "description": "Wait.",
                                              "parameters": no_parameters}}
            for name in ATTACKS
        ],
    }  # fmt: skip
    (folder / "environment.json").write_text(json.dumps(manifest))
    (folder / "schema.sql").write_text("CREATE TABLE t (id INTEGER PRIMARY KEY);\n")
    (folder / "seed.json").write_text(json.dumps({"t": [{"id": 1}]}))
    (folder / "tools.py").write_text(tools_py())
    return folder


def record(name: str) -> str:
    call = {"id": "call_1", "type": "function",
            "function": {"name": f"wait_{name}", "arguments": "{}"}}  # fmt: skip
    messages = [
        {"role": "system", "content": "You wait when asked to."},
        {"role": "user", "content": "Please wait a moment."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '"woke up"'},
        {"role": "assistant", "content": "Done waiting."},
    ]
    return json.dumps({"id": name, "messages": messages})


@pytest.fixture
def launcher() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Holds the launcher we start; afterwards kills everything still below it, lets the
    launcher reap them, then kills the launcher."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        for pid in descendants_of(proc.pid, process_table()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while descendants_of(proc.pid, process_table()) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def sleepers(root: int) -> dict[int, str]:
    table = process_table()
    return {pid: table[pid][2] for pid in descendants_of(root, table)
            if table[pid][2].startswith(MARK)}  # fmt: skip


async def test_no_process_survives_a_killed_verify(
    tier: str, tmp_path: Path, launcher: list[subprocess.Popen[bytes]]
) -> None:
    env_dir = write_environment(tmp_path / "env")
    records = tmp_path / "records.jsonl"
    records.write_text("".join(record(name) + "\n" for name in ATTACKS))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    verify = [sys.executable, "-m", "gem_graph.cli", "verify", "--env", str(env_dir),
              str(records), "--tier", tier]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *verify], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    launcher.append(proc)
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
    verify_pid = int(line)

    # Every record is verified at once, each by two replays (the determinism check).
    expected, seen = {MARK + name for name in ATTACKS}, set()
    deadline = time.monotonic() + 20
    while seen != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        seen |= set(sleepers(proc.pid).values())
    assert seen == expected, f"not every tool started (PR_SET_NAME refused?): {seen}"

    os.kill(verify_pid, signal.SIGKILL)
    deadline = time.monotonic() + GRACE_S
    while True:
        table = process_table()
        left = {pid: table[pid][2] for pid in descendants_of(proc.pid, table)}
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not left, f"processes outlived the killed verify by {GRACE_S}s: {left}"
