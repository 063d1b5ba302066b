"""Shared fixtures of the sandbox tests: tiers, a canary-laden host, and invariant checks."""

from __future__ import annotations

import builtins
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gem_graph.sandbox import Sandbox, probe
from gem_graph.settings import SandboxSettings

SECRET = "sk-canary-7f3a9c21d4e8b6051"
TIMEOUT_S = 2.0
MARGIN_S = 1.5
CONFINED_TIERS = ("strict", "standard")


def tier_params() -> list[object]:
    """Every confined tier, skipped with the probe's reason when this machine lacks it."""
    tiers = probe()["tiers"]
    return [
        pytest.param(t, marks=pytest.mark.skipif(tiers[t] is not True, reason=f"{t}: {tiers[t]}"))
        for t in CONFINED_TIERS
    ]


def make_db(rows: int = 3) -> bytes:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row{i}") for i in range(rows)])
    con.commit()
    data = con.serialize()
    con.close()
    return data


def test_settings(tier: str, **overrides: object) -> SandboxSettings:
    values: dict[str, object] = {
        "tier": tier,
        "call_timeout_s": TIMEOUT_S,
        "cpu_seconds": 5,
        "memory_mb": 256,
        "max_db_bytes": 8 * 1024 * 1024,
        "max_reply_bytes": 1024 * 1024,
        "prestart": 1,
    }
    values.update(overrides)
    return SandboxSettings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(params=tier_params())
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def secret_in_environ(monkeypatch: pytest.MonkeyPatch) -> str:
    """The host holds an API key; no worker may ever see it."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return SECRET


@pytest.fixture
async def sandbox(tier: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(test_settings(tier)) as sb:
        yield sb


@dataclass
class Host:
    """Canaries and listeners of the trusted parent, checked after every adversarial call."""

    tmp: Path
    canary: Path
    secret_file: Path
    other_db: Path
    other_db_bytes: bytes
    tcp_port: int = 0
    udp_port: int = 0
    received: list[str] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def context(self) -> dict[str, object]:
        return {
            "canary": str(self.canary),
            "secret_file": str(self.secret_file),
            "other_db": str(self.other_db),
            "tmp": str(self.tmp),
            "ppid": os.getpid(),
            "tcp_port": self.tcp_port,
            "udp_port": self.udp_port,
        }


def _state_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """Canary files, a secret file, another trajectory's database, TCP/UDP listeners,
    a SIGUSR1 handler and a SIGCONT watchdog (a ptrace regression must fail, not hang)."""
    tmp_path.chmod(0o755)
    secret_file = tmp_path / "host_secret.txt"
    secret_file.write_text(SECRET)
    other_db = tmp_path / "other.db"
    con = sqlite3.connect(other_db)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (42)")
    con.commit()
    con.close()
    h = Host(tmp_path, tmp_path / "canary", secret_file, other_db, other_db.read_bytes())
    stop = threading.Event()

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    h.tcp_port, h.udp_port = tcp.getsockname()[1], udp.getsockname()[1]

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
                h.received.append("tcp connection")
                conn.close()
            except OSError:
                pass
            try:
                data, _ = udp.recvfrom(65536)
                h.received.append(f"udp {data[:40]!r}")
            except OSError:
                pass

    def watchdog() -> None:
        me = os.getpid()
        while not stop.wait(0.05):
            state = _state_of(me)
            if state in ("T", "t"):
                h.stopped.append(state)
                os.kill(me, signal.SIGCONT)

    old = signal.signal(signal.SIGUSR1, lambda signum, frame: h.signals.append(signum))
    threads = [threading.Thread(target=listen, daemon=True),
               threading.Thread(target=watchdog, daemon=True)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        yield h
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        tcp.close()
        udp.close()
        signal.signal(signal.SIGUSR1, old)


PRISTINE_DUMPS = json.dumps
PRISTINE_PRINT = builtins.print


def assert_parent_untouched(h: Host) -> None:
    time.sleep(0.05)  # let a stray packet or signal arrive before we look
    assert not h.canary.exists(), "a canary file was created"
    leftovers = {p.name for p in h.tmp.iterdir()} - {"host_secret.txt", "other.db"}
    assert not leftovers, f"files appeared next to the canaries: {leftovers}"
    assert h.other_db.read_bytes() == h.other_db_bytes, "another trajectory's database changed"
    assert json.dumps is PRISTINE_DUMPS and builtins.print is PRISTINE_PRINT
    assert h.signals == [], f"parent received signals {h.signals}"
    assert h.stopped == [], "parent was stopped (ptrace)"
    assert h.received == [], f"loopback listener received {h.received}"


def assert_no_leak(*blobs: object) -> None:
    for blob in blobs:
        text = blob.decode("latin-1") if isinstance(blob, bytes) else json.dumps(blob, default=str)
        assert SECRET not in text, "the secret canary leaked"
