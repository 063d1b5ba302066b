"""The adversarial suite (sandbox notes, section 7): every case on every confined tier.

Each test checks the three invariants: (a) the parent is untouched, (b) no secret leaked,
(c) a structured result arrived within the deadline plus a small margin.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sandbox_helpers import (
    MARGIN_S,
    SECRET,
    TIMEOUT_S,
    Host,
    assert_no_leak,
    assert_parent_untouched,
    make_db,
    test_settings,
)

from gem_graph.sandbox import (
    DatabaseSpec,
    EpisodeClosed,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)

FATAL_KILL = {"timeout", "cpu_limit"}


def tool(body: str) -> str:
    """Wrap an attack body into a tool module with `attack(db, ctx)`."""
    return "import os, sys\n\ndef attack(db, ctx):\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


def errors_of(body: str) -> str:
    """An attack trying several things; returns the exception names (or 'SUCCEEDED')."""
    return tool(
        "out = []\n"
        "def attempt(fn):\n"
        "    try:\n"
        "        fn()\n"
        "        out.append('SUCCEEDED')\n"
        "    except BaseException as e:\n"
        "        out.append(type(e).__name__)\n" + textwrap.dedent(body) + "\nreturn out\n"
    )


@dataclass
class Case:
    id: str
    source: str
    check: Callable[[dict[str, Any], Host], None]


def expect_status(*statuses: str, error_type: str | None = None) -> Callable[..., None]:
    def check(r: dict[str, Any], h: Host) -> None:
        assert r["status"] in statuses, r
        if error_type is not None:
            assert r["error_type"] == error_type, r

    return check


def expect_failures(*allowed: str) -> Callable[..., None]:
    """Every attempt failed, with one of the allowed exception names."""

    def check(r: dict[str, Any], h: Host) -> None:
        assert r["status"] == "ok", r
        assert r["result"], r
        assert all(name in allowed for name in r["result"]), r["result"]

    return check


def expect_exec_denied(r: dict[str, Any], h: Host) -> None:
    assert r["status"] == "ok", r
    assert r["result"] not in (0, None), r  # os.system returned 127/32512 or -1: no shell ran


DENIED = ("PermissionError", "FileNotFoundError", "OSError")

CASES = [
    Case("c02_os_system", tool("return os.system('touch ' + ctx['canary'])"), expect_exec_denied),
    Case(
        "c03_subprocess",
        tool("import subprocess\nsubprocess.run(['/usr/bin/touch', ctx['canary']])"),
        expect_status("error", error_type="PermissionError"),
    ),
    Case(
        "c04_ctypes_system",
        tool("import ctypes\nreturn ctypes.CDLL(None).system(('touch ' + ctx['canary']).encode())"),
        expect_exec_denied,
    ),
    Case(
        "c05_subclasses_and_frames",
        tool("""
            rc = []
            for c in ().__class__.__base__.__subclasses__():
                if c.__name__ == '_wrap_close':
                    rc.append(c.__init__.__globals__['system']('touch ' + ctx['canary']))
            g = (sys._getframe(1) for _ in [0])
            frame = next(g)
            while frame is not None:
                mod = frame.f_globals.get('os')
                if mod is not None:
                    rc.append(mod.system('touch ' + ctx['canary']))
                frame = frame.f_back
            return rc
        """),
        lambda r, h: (
            (r["status"] == "ok" and r["result"] and all(x != 0 for x in r["result"]))
            or pytest.fail(str(r))
        ),
    ),
    Case(
        "c06_read_host_files",
        errors_of("""
            attempt(lambda: open('/etc/passwd').read())
            attempt(lambda: open(ctx['secret_file']).read())
            attempt(lambda: open('/etc/shadow').read())
        """),
        expect_failures(*DENIED),
    ),
    Case(
        "c07_write_files",
        errors_of("""
            attempt(lambda: open(ctx['canary'], 'w').write('x'))
            attempt(lambda: open('canary_in_cwd', 'w').write('x'))
            attempt(lambda: open('/tmp/gem_canary_%d' % ctx['ppid'], 'w').write('x'))
            attempt(lambda: os.mkdir(ctx['tmp'] + '/dir'))
        """),
        expect_failures(*DENIED, "OSError"),
    ),
    Case(
        "c08_other_trajectory_db",
        errors_of("""
            import sqlite3
            def go():
                con = sqlite3.connect(ctx['other_db'])
                con.execute('UPDATE t SET x = 0')
                con.commit()
            attempt(go)
        """),
        expect_failures("OperationalError"),
    ),
    Case(
        "c09_attach_vacuum_into",
        errors_of("""
            attempt(lambda: db.execute("ATTACH DATABASE ? AS o", (ctx['other_db'],)))
            attempt(lambda: db.execute("ATTACH DATABASE ? AS c", (ctx['canary'],)))
            attempt(lambda: db.execute("VACUUM INTO ?", (ctx['canary'],)))
        """),
        expect_failures("OperationalError", "DatabaseError"),
    ),
    Case(
        "c10_load_extension",
        errors_of("""
            import sqlite3, glob
            so = (glob.glob(os.path.dirname(sqlite3.__file__) + '/../lib-dynload/*.so') or ['x'])[0]
            attempt(lambda: db.enable_load_extension(True))
            attempt(lambda: sqlite3.Connection.enable_load_extension(db, True))
            attempt(lambda: sqlite3.Connection.load_extension(db, so))
            attempt(lambda: db.execute('SELECT load_extension(?)', (so,)).fetchall())
        """),
        lambda r, h: (
            (r["status"] == "ok" and "SUCCEEDED" not in r["result"][2:]) or pytest.fail(str(r))
        ),
    ),
    Case(
        "c11_environ_dump",
        tool("return dict(os.environ)"),
        lambda r, h: (
            (r["status"] == "ok" and "OPENAI_API_KEY" not in r["result"]) or pytest.fail(str(r))
        ),
    ),
    Case(
        "c12_proc_of_parent",
        errors_of("""
            for pid in {os.getppid(), ctx['ppid']}:
                for leaf in ('environ', 'cmdline', 'mem', 'maps'):
                    attempt(lambda: open('/proc/%d/%s' % (pid, leaf), 'rb').read(4096))
                attempt(lambda: os.listdir('/proc/%d/fd' % pid))
        """),
        expect_failures(*DENIED, "ProcessLookupError"),
    ),
    Case(
        "c13_signal_parent",
        errors_of("""
            import signal
            attempt(lambda: os.kill(ctx['ppid'], signal.SIGUSR1))
            attempt(lambda: os.kill(os.getppid(), signal.SIGUSR1))
            attempt(lambda: os.killpg(os.getpgid(0), signal.SIGUSR1))
        """),
        expect_failures("PermissionError", "ProcessLookupError"),
    ),
    Case(
        "c14_ptrace_parent",
        tool("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            out = []
            for pid in (ctx['ppid'], os.getppid()):
                rc = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
                out.append([rc, ctypes.get_errno()])
            return out
        """),
        lambda r, h: (
            (r["status"] == "ok" and all(rc == -1 for rc, _ in r["result"])) or pytest.fail(str(r))
        ),
    ),
    Case(
        "c15_tcp_connect",
        errors_of("""
            import socket
            attempt(lambda: socket.create_connection(('127.0.0.1', ctx['tcp_port']), 1))
        """),
        expect_failures("PermissionError"),
    ),
    Case(
        "c16_udp_sendto",
        errors_of("""
            import socket
            def go():
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b'leak', ('127.0.0.1', ctx['udp_port']))
            attempt(go)
        """),
        expect_failures("PermissionError"),
    ),
    Case(
        "c17_fork",
        tool("""
            made = 0
            for _ in range(50):
                try:
                    pid = os.fork()
                except OSError as e:
                    return {'made': made, 'error': type(e).__name__}
                if pid == 0:
                    os._exit(0)
                made += 1
            return {'made': made, 'error': None}
        """),
        lambda r, h: (
            (r["status"] == "ok" and r["result"] == {"made": 0, "error": "PermissionError"})
            or pytest.fail(str(r))
        ),
    ),
    Case(
        "c18_thread_bomb",
        tool("""
            import threading
            ev = threading.Event()
            n = 0
            try:
                for n in range(20000):
                    threading.Thread(target=ev.wait, daemon=True).start()
            except (RuntimeError, MemoryError) as e:
                ev.set()
                return {'stopped_at': n, 'error': type(e).__name__}
            ev.set()
            return {'stopped_at': n, 'error': None}
        """),
        lambda r, h: (
            (
                r["status"] in {"ok", "memory", "crashed", "timeout", "error"}
                and (r["status"] != "ok" or r["result"]["stopped_at"] < 19999)
            )
            or pytest.fail(str(r))
        ),
    ),
    Case(
        "c19_allocate_2gib",
        tool("b = bytearray(2 * 1024 ** 3)\nreturn len(b)"),
        expect_status("memory"),
    ),
    Case("c20_busy_loop", tool("while True:\n    pass"), expect_status(*FATAL_KILL)),
    Case("c21a_sleep", tool("import time\ntime.sleep(3600)"), expect_status("timeout")),
    Case("c21b_read_stdin", tool("return os.read(0, 1)"), expect_status("timeout")),
    Case(
        "c21c_event_wait",
        tool("import threading\nthreading.Event().wait()"),
        expect_status("timeout"),
    ),
    Case("c22_big_power", tool("return 10 ** (10 ** 8) > 0"), expect_status(*FATAL_KILL)),
    Case(
        "c23a_flood_fd1",
        tool("os.write(1, b'x' * (64 * 1024 * 1024))"),
        expect_status("output_limit", "protocol_error"),
    ),
    Case(
        "c23b_flood_fd2",
        tool("""
            chunk = b'y' * (1024 * 1024)
            for _ in range(64):
                os.write(2, chunk)
            return 'done'
        """),
        expect_status("ok"),
    ),
    Case(
        "c23c_huge_return",
        tool("return 'z' * (50 * 1024 * 1024)"),
        expect_status("output_limit", "memory"),
    ),
    Case(
        "c23d_huge_print",
        tool("print('p' * (10 * 1000 * 1000))\nreturn 'printed'"),
        lambda r, h: (
            (r["status"] == "ok" and len(r["stdout"]) < 100_000 and "truncated" in r["stdout"])
            or pytest.fail(str(r)[:300])
        ),
    ),
    Case(
        "c24_write_big_file",
        errors_of("""
            def go():
                with open(ctx['tmp'] + '/big.bin', 'wb') as fh:
                    fh.write(b'0' * (64 * 1024 * 1024))
            attempt(go)
        """),
        expect_failures(*DENIED),
    ),
    Case("c27a_os_exit", tool("os._exit(3)"), expect_status("crashed")),
    Case("c27b_sys_exit", tool("sys.exit()"), expect_status("error", error_type="SystemExit")),
    Case(
        "c27c_keyboard_interrupt",
        tool("raise KeyboardInterrupt"),
        expect_status("error", error_type="KeyboardInterrupt"),
    ),
    Case(
        "c28a_segfault",
        tool("import ctypes\nctypes.string_at(0)"),
        lambda r, h: (r["status"] == "crashed" and "SIGSEGV" in r["error"]) or pytest.fail(str(r)),
    ),
    Case(
        "c28b_deep_recursion",
        tool("sys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nreturn f(0)"),
        expect_status("crashed", "error", "memory", "timeout", "cpu_limit"),
    ),
]


SPEC: DatabaseSpec = {
    "schema_sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    "seed": {"t": [{"id": i, "name": f"row{i}"} for i in range(3)]},
}
"""The attack's database: built in a template that the bystander episode forks from too."""


async def run_case(sandbox: Sandbox, host: Host, source: str) -> tuple[dict[str, Any], Any]:
    """Run `attack` in one episode while a bystander forked from the same template waits."""
    other = await sandbox.open_episode(tool("return 1"), SPEC)
    pristine = await other.state()
    episode = await sandbox.open_episode(source, SPEC)
    try:
        loaded = await episode.load()
        assert loaded["ok"], loaded
        started = time.monotonic()
        result = await episode.call("attack", {"ctx": host.context()})
        elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT_S + MARGIN_S, f"no answer within the deadline ({elapsed:.1f}s)"
        assert set(result) >= {"status", "result", "error", "stdout", "elapsed_ms"}
        db = None
        if result["status"] not in {"timeout", "cpu_limit", "crashed", "protocol_error"}:
            try:
                db = await episode.snapshot()
            except SandboxError:
                db = None
        assert await other.state() == pristine, "the bystander's database changed"
        return dict(result), db
    finally:
        await episode.close()
        await other.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_adversarial_case(sandbox: Sandbox, host: Host, case: Case) -> None:
    result, db = await run_case(sandbox, host, case.source)
    case.check(result, host)
    assert_parent_untouched(host)
    assert_no_leak(result, db or b"")


async def test_c01_benign_tool_changes_db(sandbox: Sandbox, host: Host) -> None:
    source = tool("db.execute(\"INSERT INTO t VALUES (100, 'new')\")\nreturn {'rows': 4}")
    result, db = await run_case(sandbox, host, source)
    assert result["status"] == "ok" and result["result"] == {"rows": 4}
    import sqlite3

    con = sqlite3.connect(":memory:")
    con.deserialize(db)
    assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
    assert con.execute("SELECT name FROM t WHERE id = 100").fetchone() == ("new",)
    assert_parent_untouched(host)
    assert_no_leak(result, db)


async def test_c21_no_leftover_process_after_timeout(sandbox: Sandbox) -> None:
    episode = await sandbox.open_episode(tool("import time\ntime.sleep(3600)"), make_db())
    pid = episode.pid
    assert pid is not None and _alive(pid)
    result = await episode.call("attack", {"ctx": {}})
    assert result["status"] == "timeout"
    assert await _gone_within(pid, 2.0), "worker still alive after its deadline"
    again = await episode.call("attack", {"ctx": {}})
    assert again["status"] == "timeout" and again["elapsed_ms"] < 100  # dead: nothing ran


@pytest.mark.parametrize(
    "body",
    [
        'frame = b\'{"status": "ok", "result": "forged", "stdout": ""}\'',
    ],
    ids=["c25_forged_reply"],
)
async def test_c25_forged_reply_then_exit(sandbox: Sandbox, host: Host, body: str) -> None:
    source = tool(body + "\nimport struct\nos.write(1, struct.pack('>I', len(frame)) + frame)\n"
                  "os._exit(0)")  # fmt: skip
    episode = await sandbox.open_episode(source, make_db())
    result = await episode.call("attack", {"ctx": {}})
    # A forged reply is just untrusted tool output: validated JSON, never more.
    assert result["status"] in {"ok", "crashed", "protocol_error"}
    with pytest.raises(SandboxError):
        await episode.snapshot()  # no database comes back from a dead worker
    await episode.close()
    assert_parent_untouched(host)


PICKLE_BOMB = (
    "import pickle\nclass P:\n    def __reduce__(self):\n"
    "        return (os.system, ('touch ' + CANARY,))\n"
)


@pytest.mark.parametrize(
    ("body", "statuses"),
    [
        ("payload = b'\\xff\\xfe\\x00garbage'", {"protocol_error"}),
        ('payload = \'{"status": "ok"\'.encode()', {"protocol_error"}),
        ("payload = pickle.dumps(P())", {"protocol_error"}),
        ("payload = b'[1, 2, 3]'", {"protocol_error"}),
        ("payload = None", {"crashed", "protocol_error"}),
    ],
    ids=["c26_non_utf8", "c26_truncated_json", "c26_pickle", "c26_not_object", "c26_cut_frame"],
)
async def test_c26_garbage_replies(sandbox: Sandbox, host: Host, body: str, statuses: set) -> None:
    source = tool(
        "CANARY = ctx['canary']\n" + PICKLE_BOMB + body + "\nimport struct\n"
        "if payload is None:\n"
        "    os.write(1, struct.pack('>I', 1000) + b'{\"status\"')\n"
        "    os._exit(0)\n"
        "os.write(1, struct.pack('>I', len(payload)) + payload)\n"
        "import time\ntime.sleep(30)\n"
    )
    episode = await sandbox.open_episode(source, make_db())
    result = await episode.call("attack", {"ctx": host.context()})
    assert result["status"] in statuses, result
    assert episode.dead
    await episode.close()
    assert_parent_untouched(host)


async def test_c29_monkeypatch_confined(sandbox: Sandbox, host: Host) -> None:
    source = tool("""
        import json, builtins, sqlite3
        json.dumps = lambda *a, **k: 'garbage'
        json.loads = lambda *a, **k: {}
        builtins.print = None
        sqlite3.Connection = None
        return 'patched'
    """)
    episode = await sandbox.open_episode(source, make_db())
    result = await episode.call("attack", {"ctx": {}})
    assert result["status"] in {"ok", "protocol_error", "error"}
    await episode.close()
    probe_src = tool("""
        import json, builtins, sqlite3
        return [json.dumps({'a': 1}), builtins.print is not None,
                isinstance(sqlite3.Connection, type)]
    """)
    fresh = await sandbox.open_episode(probe_src, make_db())
    clean = await fresh.call("attack", {"ctx": {}})
    await fresh.close()
    assert clean["status"] == "ok" and clean["result"] == ['{"a": 1}', True, True], clean
    assert_parent_untouched(host)


@pytest.mark.parametrize(
    "body",
    [
        "db.execute('CREATE VIEW v AS SELECT * FROM t')",
        "db.execute('CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END')",
        "db.execute('PRAGMA writable_schema=ON')\n"
        "db.execute(\"UPDATE sqlite_master SET sql='CREATE TABLE t(x' WHERE name='t'\")\n"
        "db.commit()",
    ],
    ids=["c30_view", "c30_trigger", "c30_writable_schema"],
)
async def test_c30_schema_tampering_refused(sandbox: Sandbox, host: Host, body: str) -> None:
    """The monitor's authorizer refuses DDL and pragmas; the schema and rows stay as they were."""
    episode = await sandbox.open_episode(tool(body + "\nreturn 'done'"), make_db())
    before = await episode.state()
    result = await episode.call("attack", {"ctx": {}})
    assert result["status"] == "error" and "not authorized" in (result["error"] or ""), result
    assert await episode.state() == before
    await episode.close()
    assert_parent_untouched(host)


async def test_c31_database_over_cap(sandbox: Sandbox, host: Host) -> None:
    """A blob past SQLite's length limit, or rows past the page cap, fail inside the call."""
    source = tool(
        "out = []\n"
        "try:\n"
        "    db.execute('INSERT INTO t VALUES (999, zeroblob(20000000))')\n"
        "    out.append('SUCCEEDED')\n"
        "except Exception as e:\n"
        "    out.append(str(e))\n"
        "for i in range(6):\n"
        "    try:\n"
        "        db.execute('INSERT INTO t VALUES (?, zeroblob(9000000))', (2000 + i,))\n"
        "    except Exception as e:\n"
        "        out.append(str(e))\n"
        "        break\n"
        "return out"
    )
    episode = await sandbox.open_episode(source, make_db())
    result = await episode.call("attack", {"ctx": {}})
    assert result["status"] == "ok", result
    assert "too big" in result["result"][0], result
    assert "full" in result["result"][-1], result
    assert len(await episode.snapshot()) <= sandbox.settings.max_db_bytes
    await episode.close()
    assert_parent_untouched(host)


async def test_c32_broken_tool_sources(sandbox: Sandbox) -> None:
    bad = await sandbox.open_episode("def broken(db:\n    pass\n", make_db())
    loaded = await bad.load()
    assert loaded["ok"] is False and loaded["error_type"] == "SyntaxError"
    await bad.close()
    ep = await sandbox.open_episode(
        "def f(db, x):\n    return x\n\ndef conn(db):\n    return db\n", make_db()
    )
    missing = await ep.call("nope", {})
    assert missing["status"] == "error" and missing["error_type"] == "UnknownFunction"
    wrong = await ep.call("f", {"y": 1})
    assert wrong["status"] == "error" and wrong["error_type"] == "TypeError"
    nonjson = await ep.call("conn", {})
    assert nonjson["status"] == "error" and "JSON" in (nonjson["error"] or "")
    ok = await ep.call("f", {"x": [1, "a"]})
    assert ok["status"] == "ok" and ok["result"] == [1, "a"]
    await ep.close()


@pytest.mark.parametrize("layer", ["seccomp", "landlock"])
async def test_c33_fail_closed(tier: str, host: Host, layer: str) -> None:
    source = (
        "import socket\n"
        f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'ran', "
        f"('127.0.0.1', {host.udp_port}))\n"
        f"open({str(host.canary)!r}, 'w').write('ran')\n"
    )
    sb = Sandbox(test_settings(tier, prestart=0), _break=(layer,))
    try:
        with pytest.raises(SandboxUnavailable, match=layer):
            episode = await sb.open_episode(source, make_db())
            await episode.load()
    finally:
        await sb.aclose()
    assert_parent_untouched(host)


async def test_c34_sibling_attack(sandbox: Sandbox, host: Host) -> None:
    victim = await sandbox.open_episode("def ping(db):\n    return 'pong'\n", make_db())
    handle = victim._handle
    pids = sorted({p for p in (victim.pid, getattr(handle, "nspid", None)) if p})
    attacker = await sandbox.open_episode(
        errors_of("""
            import signal, ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            for pid in ctx['pids']:
                attempt(lambda: os.kill(pid, signal.SIGKILL))
                attempt(lambda: os.kill(pid, signal.SIGSTOP))
                def trace():
                    if libc.ptrace(16, pid, 0, 0) != 0:
                        raise PermissionError(ctypes.get_errno())
                attempt(trace)
        """),
        make_db(),
    )
    result = await attacker.call("attack", {"ctx": {"pids": pids}})
    assert result["status"] == "ok", result
    assert all(name in {"PermissionError", "ProcessLookupError"} for name in result["result"])
    assert (await victim.call("ping", {}))["result"] == "pong"
    await attacker.close()
    await victim.close()
    assert_parent_untouched(host)


DRIVER = """
import asyncio, sys
from gem_graph.sandbox import Sandbox
from gem_graph.settings import SandboxSettings

import sqlite3

SOURCE = "import time\\ndef wait(db):\\n    time.sleep(60)\\n"

async def main():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (x)")
    sb = Sandbox(SandboxSettings(tier=sys.argv[1], call_timeout_s=60, prestart=0))
    ep = await sb.open_episode(SOURCE, con.serialize())
    print(ep.pid, flush=True)
    await ep.call("wait", {})

asyncio.run(main())
"""


async def test_c35_parent_dies_mid_call(tier: str, tmp_path: Any) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root
    proc = subprocess.Popen(
        [sys.executable, str(script), tier], stdout=subprocess.PIPE, env=env, cwd=root
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        worker = int(line)
        assert _alive(worker)
        await asyncio.sleep(0.2)  # the call is now in flight
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        assert await _gone_within(worker, 3.0), "worker outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


async def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def test_suite_covers_every_case() -> None:
    """All 35 cases of the notes are present (by number)."""
    numbers = {int(c.id[1:3]) for c in CASES} | {1, 21, 25, 26, 29, 30, 31, 32, 33, 34, 35}
    assert numbers == set(range(1, 36))


__all__ = ["SECRET", "EpisodeClosed"]
