"""Shared fixtures of the sandbox tests: tiers, a canary-laden host, and invariant checks."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import tempfile
import textwrap
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
def host(tmp_path: Path, host_guard: HostGuard) -> Iterator[Host]:
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
    host_guard.watch(tmp_path, secret_file, other_db)
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


# ---------------------------------------------------------------- attack sources with errnos


def tool_source(body: str) -> str:
    """Wrap an attack body into a tool module with `attack(db, ctx)`."""
    return "import os, sys\n\ndef attack(db, ctx):\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


LIBC_PRELUDE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def checked(rc):
    if rc == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc
"""
"""ctypes over libc for attack bodies: `checked(rc)` turns -1 into an OSError with errno."""


def attempts_of(body: str) -> str:
    """An attack making labelled attempts; returns {label: 'SUCCEEDED' | 'ExcName:ERRNO'}."""
    return tool_source(
        "import errno as _errno\n"
        "out = {}\n"
        "def attempt(label, fn):\n"
        "    try:\n"
        "        fn()\n"
        "        out[label] = 'SUCCEEDED'\n"
        "    except BaseException as e:\n"
        "        code = getattr(e, 'errno', None)\n"
        "        name = _errno.errorcode.get(code, str(code)) if code else ''\n"
        "        out[label] = type(e).__name__ + ':' + name\n"
        + textwrap.dedent(LIBC_PRELUDE)
        + textwrap.dedent(body)
        + "\nreturn out\n"
    )


def refused(outcomes: dict[str, str], *allowed: str) -> dict[str, str]:
    """The attempts whose outcome is not one of `allowed` ('PermissionError' or
    'PermissionError:EPERM' style prefixes); empty when everything was refused."""
    return {
        label: outcome
        for label, outcome in outcomes.items()
        if not any(outcome == a or outcome.startswith(a + ":") for a in allowed)
    }


# ---------------------------------------------------------------- host-state snapshots

WORKER_MARK = "sandbox/worker.py"
"""In the command line of every sandbox worker (fresh, zygote, forked child, bwrap)."""


def sysvipc_ids() -> dict[str, set[tuple[int, int]]]:
    """(key, id) of every System V shared memory segment, message queue and semaphore set."""
    found: dict[str, set[tuple[int, int]]] = {}
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            lines = []
        found[kind] = {(int(f[0]), int(f[1])) for f in (line.split() for line in lines) if f}
    return found


def process_table() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (ppid, start time in ticks, comm, command line) of every visible process."""
    table: dict[int, tuple[int, int, str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            continue
        table[int(entry)] = (int(fields[1]), int(fields[19]), comm, cmdline)
    return table


def descendants_of(root: int, table: dict[int, tuple[int, int, str, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def sandbox_workers(table: dict[int, tuple[int, int, str, str]]) -> set[tuple[int, int]]:
    """(pid, start time) of every live process running a sandbox worker."""
    return {(pid, info[1]) for pid, info in table.items() if WORKER_MARK in info[3]}


def path_state(path: Path) -> tuple[object, ...]:
    """Mode, owner, modification and change times, and extended attributes of one path.

    Not the access time: the host itself reads the files it checks. Any metadata change
    (chmod, chown, utime, xattrs) moves the change time.
    """
    st = os.lstat(path)
    try:
        xattrs = {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}
    except OSError:
        xattrs = {}
    return (oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns, xattrs)


class HostGuard:
    """What the host looked like when the session started, checked when it ends.

    System V IPC objects, sandbox worker processes that this session left behind (our
    descendants, or orphans adopted by init), and the metadata of the victim files the
    attack tests create in a world-readable folder outside pytest's private tmp tree.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gg-host-state-"))
        self.folder.chmod(0o755)  # world-readable: an unprivileged worker can reach it
        self.ipc = sysvipc_ids()
        self.workers = sandbox_workers(process_table())
        self.paths: dict[Path, tuple[object, ...]] = {self.folder: path_state(self.folder)}

    def watch(self, *paths: Path) -> None:
        """Check these paths' metadata at the end of the session against their state now."""
        for path in paths:
            self.paths[path] = path_state(path)

    def victim(self, name: str, xattr: str | None = "user.gg_keep") -> Path:
        """A world-readable file in the watched folder (with one user xattr if supported)."""
        path = self.folder / name
        path.write_text("host file: metadata must not change\n")
        path.chmod(0o644)
        if xattr is not None:
            with contextlib.suppress(OSError):
                os.setxattr(path, xattr, b"1")
        self.watch(path, self.folder)  # the new entry touched the folder too
        return path

    def leftover_workers(self, wait_s: float = 3.0) -> list[tuple[int, str]]:
        """New worker processes still alive (our descendants or orphans), after a grace."""
        deadline = time.monotonic() + wait_s
        while True:
            table = process_table()
            ours = descendants_of(os.getpid(), table)
            new = [
                (pid, table[pid][3][:120])
                for pid, start in sandbox_workers(table) - self.workers
                if pid in ours or table[pid][0] == 1
            ]
            if not new or time.monotonic() > deadline:
                return new
            time.sleep(0.1)

    def changes(self) -> list[str]:
        found = []
        now = sysvipc_ids()
        for kind, before in self.ipc.items():
            if now[kind] != before:
                found.append(f"sysvipc {kind}: new {now[kind] - before}, gone {before - now[kind]}")
        for pid, cmdline in self.leftover_workers():
            found.append(f"sandbox worker {pid} left running: {cmdline}")
        for path, before in self.paths.items():
            after = path_state(path) if path.exists() else None
            if after != before:
                found.append(f"{path}: {before} -> {after}")
        return found

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def host_guard() -> Iterator[HostGuard]:
    """Session-wide: System V IPC, leftover workers and victim files are as they were."""
    guard = HostGuard()
    try:
        yield guard
        changes = guard.changes()
        assert not changes, "the sandbox session changed the host:\n" + "\n".join(changes)
    finally:
        guard.close()
