"""The sandbox worker: runs as `python -I -S -B worker.py MODE CONFIG_JSON`. Stdlib only.

It imports everything it needs, locks itself down (rlimits, prctl, dropped capabilities,
Landlock, seccomp), reports what was applied, and only then reads tool code. MODE is:
- `single`: serve one episode on fd 0 (requests) / fd 1 (replies);
- `zygote`: a fork server on the inherited unix socket `config["ctl_fd"]`. It never runs
  tool code. Per `spawn` request it forks a child that adds its own limits and seccomp
  filter and serves one episode over two fresh pipes, whose parent ends are sent back with a
  pidfd (SCM_RIGHTS).

Frames are a 4-byte big-endian length followed by UTF-8 JSON. Never pickle.
"""

from __future__ import annotations

import base64
import builtins

# Modules tool code commonly imports, loaded before lockdown so forked children share them.
import contextlib
import ctypes
import importlib.util
import inspect
import io
import json
import os
import resource
import select
import signal
import socket
import sqlite3
import struct
import sys
import traceback
import types
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = (
    "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "hashlib",
    "itertools", "math", "random", "re", "statistics", "string", "typing", "uuid",
)  # fmt: skip
"""Modules tool code commonly imports, loaded before lockdown so forked children share them."""
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
_HEADER = struct.Struct(">I")
_libc = ctypes.CDLL(None, use_errno=True)
_dumps = json.dumps
_loads = json.loads


class Unavailable(Exception):
    """A requested isolation layer could not be applied."""


def _load_file_module(name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _install_runtime(path: str) -> types.ModuleType:
    """Make `from gem_graph.runtime import …` work without exposing the package on disk."""
    package = types.ModuleType("gem_graph")
    package.__path__ = []
    sys.modules["gem_graph"] = package
    runtime = _load_file_module("gem_graph.runtime", path)
    package.runtime = runtime  # type: ignore[attr-defined]
    return runtime


def _import_seccomp_binding(directory: str | None) -> types.ModuleType:
    """Import pyseccomp from its own directory only, without running `ldconfig`."""
    if not directory or not os.path.isfile(os.path.join(directory, "pyseccomp.py")):
        raise Unavailable(f"seccomp binding (pyseccomp) not found in {directory!r}")
    import ctypes.util

    real = ctypes.util.find_library
    known = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
    ctypes.util.find_library = lambda name: known.get(name) or real(name)
    sys.path.insert(0, directory)
    try:
        import pyseccomp
    except Exception as exc:
        raise Unavailable(f"seccomp binding unusable: {exc}") from exc
    finally:
        sys.path.remove(directory)
        ctypes.util.find_library = real
    return pyseccomp


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise Unavailable(f"prctl({option}) failed: {os.strerror(err)}")


def _drop_capabilities() -> bool:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets."""
    for cap in range(64):
        failed = _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0
        if failed and ctypes.get_errno() == 22:  # EINVAL: past the last capability
            break
    _libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    nr = _SYS_CAPSET.get(os.uname().machine)
    if nr is None:
        return False
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    return bool(_libc.syscall(ctypes.c_long(nr), ctypes.byref(header), ctypes.byref(data)) == 0)


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _set_death_signal(expected_parent: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:  # the parent died before the prctl took effect
        os._exit(70)


class Lockdown:
    """Applies the isolation layers requested by the config and records what applied."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.isolation: dict[str, Any] = {
            "tier": config["tier"],
            "landlock": 0,
            "seccomp": False,
            "bwrap": bool(config.get("bwrap")),
            "rlimits": False,
            "no_new_privs": False,
            "caps_dropped": False,
        }
        self.seccomp_module: types.ModuleType | None = None
        self.seccomp_rules: types.ModuleType | None = None
        self.landlock: types.ModuleType | None = None

    def prepare(self) -> None:
        """Imports only: nothing is restricted yet."""
        broken = set(self.config.get("break", ()))
        if self.config["seccomp"]:
            directory = None if "seccomp" in broken else self.config.get("seccomp_dir")
            self.seccomp_module = _import_seccomp_binding(directory)
            self.seccomp_rules = _load_file_module("_gg_seccomp", os.path.join(HERE, "seccomp.py"))
        if self.config["landlock"]:
            self.landlock = _load_file_module("_gg_landlock", os.path.join(HERE, "landlock.py"))
            if "landlock" in broken:
                self.landlock.abi_version = lambda: 0  # type: ignore[attr-defined]

    def apply_process(self, limits: dict[str, int], parent: int) -> None:
        """rlimits, prctl and capabilities for this process."""
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_FSIZE, 0)
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        if limits.get("cpu"):
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        self.isolation["rlimits"] = True
        _set_death_signal(parent)
        _prctl(_PR_SET_DUMPABLE, 0)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        self.isolation["no_new_privs"] = True
        self.isolation["caps_dropped"] = _drop_capabilities()

    def apply_confinement(self, *, fork_server: bool) -> None:
        """Landlock and the seccomp filter(s); raises Unavailable when a requested one fails."""
        if self.landlock is not None:
            abi = self.landlock.abi_version()
            if abi < 1:
                raise Unavailable("landlock is not supported by this kernel")
            try:
                self.isolation["landlock"] = self.landlock.restrict(
                    self.config["read_dirs"], self.config["read_files"], abi=abi
                )
            except OSError as exc:
                raise Unavailable(f"landlock could not be applied: {exc}") from exc
        if self.seccomp_module is not None and self.seccomp_rules is not None:
            try:
                self.seccomp_rules.base_filter(self.seccomp_module).load()
                if not fork_server:
                    self.seccomp_rules.child_filter(self.seccomp_module, os.getpid()).load()
            except Exception as exc:
                raise Unavailable(f"seccomp filter could not be loaded: {exc}") from exc
            self.isolation["seccomp"] = True

    def apply_child(self, limits: dict[str, int], parent: int) -> None:
        """In a forked child: its own limits, death signal, scope layer and second filter."""
        _set_death_signal(parent)
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        if self.landlock is not None and self.isolation["landlock"]:
            self.landlock.scope_self(self.isolation["landlock"])
        if self.seccomp_module is not None and self.seccomp_rules is not None:
            self.seccomp_rules.child_filter(self.seccomp_module, os.getpid()).load()


# --------------------------------------------------------------------------- episode serving


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Any:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if body is None else _loads(body)


def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


class _CappedText(io.TextIOBase):
    """A stdout replacement that keeps at most `cap` characters."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.cap - self.size
        if len(text) > room:
            self.truncated = True
            text = text[: max(room, 0)]
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def value(self) -> str:
        return "".join(self.parts) + ("\n…[stdout truncated]" if self.truncated else "")


class _GuardedConnection(sqlite3.Connection):
    """The tool's `db`: extension loading is not available."""

    def enable_load_extension(self, enabled: bool) -> None:
        raise sqlite3.NotSupportedError("extension loading is disabled in the sandbox")

    def load_extension(self, *args: Any, **kwargs: Any) -> None:
        raise sqlite3.NotSupportedError("extension loading is disabled in the sandbox")


def _short_traceback(limit_chars: int = 4000) -> str:
    text = traceback.format_exc()
    return text if len(text) <= limit_chars else "…" + text[-limit_chars:]


def _describe(fn: Any) -> dict[str, Any] | None:
    """Signature summary of a tool function whose first parameter is `db`, else None."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params or params[0].name != "db":
        return None
    names: list[str] = []
    required: list[str] = []
    var_kwargs = False
    for p in params[1:]:
        if p.kind is p.VAR_KEYWORD:
            var_kwargs = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return {"parameters": names, "required": required, "accepts_var_kwargs": var_kwargs}


class EpisodeServer:
    """Holds one episode's database and tool namespace; answers framed requests."""

    def __init__(self, config: dict[str, Any], isolation: dict[str, Any]) -> None:
        self.config = config
        self.isolation = isolation
        self.db: sqlite3.Connection | None = None
        self.namespace: dict[str, Any] | None = None
        self.functions: dict[str, Any] = {}
        self.load_failure: dict[str, Any] | None = None
        self.source = ""

    def serve(self, rfd: int, wfd: int) -> None:
        sys.stdin = io.StringIO("")
        _write_frame(wfd, _dumps({"ready": True, "isolation": self.isolation}).encode())
        while True:
            request = _read_frame(rfd)
            if request is None:
                return
            reply = self.handle(request)
            payload = self._encode(reply)
            _write_frame(wfd, payload)

    def _encode(self, reply: dict[str, Any]) -> bytes:
        try:
            payload = _dumps(reply, allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            reply = {**reply, "status": "error", "result": None}
            reply.update(error_type="TypeError", error=f"return value is not JSON: {exc}")
            payload = _dumps(reply, default=repr).encode()
        limit = self.config["max_reply_bytes"]
        if reply.get("op") != "snapshot" and len(payload) > limit:
            reply = {"status": "output_limit", "result": None, "error_type": "OutputLimit",
                     "error": f"reply of {len(payload)} bytes exceeds {limit}",
                     "traceback": None, "stdout": reply.get("stdout", "")[:1000]}  # fmt: skip
            payload = _dumps(reply).encode()
        return payload

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "init":
            return self._init(request)
        if op == "load":
            return self._load()
        if op == "call":
            return self._call(str(request.get("name")), request.get("arguments") or {})
        if op == "snapshot":
            return self._snapshot()
        return {"status": "error", "error_type": "ProtocolError", "error": f"unknown op {op!r}"}

    def _init(self, request: dict[str, Any]) -> dict[str, Any]:
        runtime = sys.modules["gem_graph.runtime"]
        runtime._configure(request.get("now"), int(request.get("seed") or 0))
        db = sqlite3.connect(":memory:", factory=_GuardedConnection, check_same_thread=False)
        db.deserialize(base64.b64decode(request["db"]))
        db.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self.db = db
        self.source = str(request["source"])
        return {"status": "ok"}

    def _load(self) -> dict[str, Any]:
        if self.load_failure is not None:
            return self.load_failure
        if self.namespace is not None:
            return self._listing()
        namespace: dict[str, Any] = {"__name__": "tools", "__builtins__": builtins}
        self.namespace = namespace
        out = _CappedText(self.config["max_stdout_bytes"])
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        failure: dict[str, Any] | None = None
        try:
            exec(compile(self.source, "tools.py", "exec"), namespace)
        except MemoryError:
            failure = {"status": "memory", "error_type": "MemoryError",
                       "error": "out of memory loading tools", "traceback": None}  # fmt: skip
        except BaseException as exc:
            failure = {"status": "error", "error_type": type(exc).__name__,
                       "error": str(exc)[:2000], "traceback": _short_traceback()}  # fmt: skip
        finally:
            sys.stdout, sys.stderr = saved
        if failure is not None:
            self.load_failure = {"ok": False, **failure, "stdout": out.value()}
            return self.load_failure
        for name, obj in list(namespace.items()):
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if getattr(obj, "__module__", None) != "tools":
                continue
            summary = _describe(obj)
            if summary is not None:
                self.functions[name] = (obj, summary)
        return self._listing()

    def _listing(self) -> dict[str, Any]:
        return {"ok": True, "functions": {n: s for n, (_, s) in self.functions.items()}}

    def _call(self, name: str, arguments: Any) -> dict[str, Any]:
        loaded = self._load()
        if not loaded.get("ok"):
            return {**loaded, "result": None}
        reply: dict[str, Any] = {"status": "ok", "result": None, "error": None,
                                 "error_type": None, "traceback": None}  # fmt: skip
        entry = self.functions.get(name)
        if entry is None or not isinstance(arguments, dict):
            reply.update(status="error", error_type="UnknownFunction",
                         error=f"no tool function named {name!r}")  # fmt: skip
            reply["stdout"] = ""
            return reply
        out = _CappedText(self.config["max_stdout_bytes"])
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        db = self.db
        tool_error = sys.modules["gem_graph.runtime"].ToolError
        try:
            reply["result"] = entry[0](db, **arguments)
            if db is not None and db.in_transaction:
                db.commit()
        except tool_error as exc:
            reply.update(status="tool_error", error=str(exc), error_type="ToolError")
            self._rollback()
        except MemoryError:
            reply.update(status="memory", error_type="MemoryError", error="out of memory")
            self._rollback()
        except BaseException as exc:
            reply.update(status="error", error_type=type(exc).__name__, error=str(exc)[:2000],
                         traceback=_short_traceback())  # fmt: skip
            self._rollback()
        finally:
            sys.stdout, sys.stderr = saved
        reply["stdout"] = out.value()
        return reply

    def _rollback(self) -> None:
        try:
            if self.db is not None and self.db.in_transaction:
                self.db.rollback()
        except Exception:
            pass

    def _snapshot(self) -> dict[str, Any]:
        try:
            assert self.db is not None
            data = self.db.serialize()
        except MemoryError:
            return {"op": "snapshot", "status": "memory", "error": "out of memory"}
        except Exception as exc:
            return {"op": "snapshot", "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        if len(data) > self.config["max_db_bytes"]:
            limit = self.config["max_db_bytes"]
            error = f"database of {len(data)} bytes exceeds {limit}"
            return {"op": "snapshot", "status": "output_limit", "error": error}
        return {"op": "snapshot", "status": "ok", "db": base64.b64encode(data).decode()}


# --------------------------------------------------------------------------- entry points


def _fail_closed(report: Any, reason: str) -> None:
    report({"unavailable": reason})
    os._exit(78)


def run_single(config: dict[str, Any]) -> None:
    """Fresh-worker mode: lock down, then serve one episode on fd 0/1."""

    def report(obj: Any) -> None:
        _write_frame(1, _dumps(obj).encode())

    lock = Lockdown(config)
    try:
        lock.prepare()
        limits = dict(config["limits"])
        lock.apply_process(limits, os.getppid())
        lock.apply_confinement(fork_server=False)
    except Unavailable as exc:
        _fail_closed(report, str(exc))
    except Exception as exc:
        _fail_closed(report, f"lockdown failed: {type(exc).__name__}: {exc}")
    EpisodeServer(config, lock.isolation).serve(0, 1)
    os._exit(0)


def run_zygote(config: dict[str, Any]) -> None:
    """Fork-server mode: lock down without tool code; fork one child per spawn request."""
    ctl = socket.socket(fileno=int(config["ctl_fd"]))

    def report(obj: Any) -> None:
        ctl.send(_dumps(obj).encode())

    lock = Lockdown(config)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        lock.prepare()
        zygote_limits = dict(config["limits"], cpu=0, nofile=max(64, config["limits"]["nofile"]))
        lock.apply_process(zygote_limits, os.getppid())
        lock.apply_confinement(fork_server=True)
    except Unavailable as exc:
        _fail_closed(report, str(exc))
    except Exception as exc:
        _fail_closed(report, f"lockdown failed: {type(exc).__name__}: {exc}")
    report({"ready": True, "isolation": lock.isolation, "pid": os.getpid()})

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, str] = {}
    me = os.getpid()
    while True:
        readable, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = children.pop(pid, None)
            if key is not None:
                cpu = usage.ru_utime + usage.ru_stime
                report({"exited": key, "status": status, "cpu": cpu})
        if ctl.fileno() in readable:
            msg = ctl.recv(65536)
            if not msg:
                os._exit(0)
            request = _loads(msg)
            key = str(request["spawn"])
            req_r, req_w = os.pipe2(os.O_CLOEXEC)
            resp_r, resp_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:
                _child_main(config, lock, ctl, devnull, req_r, resp_w, me)
            children[pid] = key
            os.close(req_r)
            os.close(resp_w)
            pidfd = os.pidfd_open(pid)
            socket.send_fds(ctl, [_dumps({"spawned": key, "pid": pid}).encode()],
                            [pidfd, req_w, resp_r])  # fmt: skip
            for fd in (pidfd, req_w, resp_r):
                os.close(fd)


def _child_main(
    config: dict[str, Any], lock: Lockdown, ctl: socket.socket, devnull: int,
    req_r: int, resp_w: int, zygote: int,
) -> None:  # fmt: skip
    """A forked episode process: rewire fds, tighten, serve; never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(req_r, 0)
        os.dup2(resp_w, 1)
        os.dup2(devnull, 2)
        ctl.detach()
        os.closerange(3, 65536)
        try:
            lock.apply_child(dict(config["limits"]), zygote)
        except Exception as exc:
            _fail_closed(lambda obj: _write_frame(1, _dumps(obj).encode()),
                         f"child lockdown failed: {type(exc).__name__}: {exc}")  # fmt: skip
        isolation = dict(lock.isolation, fork_server=True)
        EpisodeServer(config, isolation).serve(0, 1)
    except BaseException:
        pass
    os._exit(0)


def main() -> None:
    mode, config = sys.argv[1], _loads(sys.argv[2])
    if mode == "zygote":  # shared by every forked child; a fresh worker imports on demand
        for name in PRELOAD:
            importlib.import_module(name)
    _install_runtime(config["runtime_path"])
    if mode == "zygote":
        run_zygote(config)
    else:
        run_single(config)


if __name__ == "__main__":
    main()
