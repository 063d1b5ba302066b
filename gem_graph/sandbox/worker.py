"""The sandbox worker: runs as `python -s -S -B -P worker.py MODE CONFIG_JSON`. Stdlib only.

It imports everything it needs, locks itself down (an unprivileged uid when started as
root, rlimits, prctl, dropped capabilities, Landlock, seccomp), reports what was applied,
and only then serves episodes. MODE is:
- `single`: serve one episode on fd 0 (requests) / fd 1 (replies);
- `zygote`: a fork server on the inherited unix socket `config["ctl_fd"]`. Per `spawn`
  request it forks one episode process, whose two pipe ends are sent back with a pidfd.

Every episode is two processes. The **monitor** talks to the client, owns the database and
writes every verdict (outputs, state hash, diff); it never runs tool code. The **tool
child**, forked by the monitor and locked down further, runs the tool code. Its `db` is a
proxy: each statement travels to the monitor as JSON and runs there under an authorizer.
Tool code therefore cannot reach the protocol writer, the database file or the digest.

Frames are a 4-byte big-endian length followed by UTF-8 JSON. Never pickle.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import ctypes
import datetime
import importlib
import importlib.util
import inspect
import io
import itertools
import json
import os
import random
import resource
import select
import signal
import socket
import sqlite3
import struct
import sys
import time
import traceback
import types
from typing import Any, ClassVar, Literal

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = (
    "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "hashlib",
    "itertools", "json", "math", "random", "re", "statistics", "string", "typing", "uuid",
    "zoneinfo", "encodings.latin_1", "encodings.ascii", "encodings.utf_16", "encodings.utf_32",
    "encodings.cp1252", "encodings.idna", "unicodedata", "_strptime", "calendar", "locale",
    "fractions", "numbers", "operator", "copy", "bisect", "heapq", "textwrap", "difflib",
)  # fmt: skip
"""Modules tool code commonly imports, loaded by the fork server so episodes share them."""
NOBODY = 65534
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_CHILD_SUBREAPER = 36
_CAP_DAC_READ_SEARCH = 1 << 2
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CLONE_NEWIPC = 0x08000000
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
_HEADER = struct.Struct(">I")
_FETCH_BATCH = 256
_MAX_TOOL_FRAME = 32 * 2**20
TEMPLATE_CPU_FACTOR = 10
_libc = ctypes.CDLL(None, use_errno=True)
_dumps = json.dumps
_loads = json.loads


class Unavailable(Exception):
    """A requested isolation layer could not be applied."""


class _ProtocolViolation(Exception):
    """The tool child sent something that is not a well-formed frame."""


def _load_file_module(name: str, path: str, *, package: bool = False) -> types.ModuleType:
    """Load a module (or, with `package`, a package's `__init__.py`) from its path."""
    search = [os.path.dirname(path)] if package else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search)
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


def _drop_capabilities(keep: int = 0) -> bool:
    """Empty the bounding, ambient and inheritable sets; keep only `keep` (a mask) in effect."""
    for cap in range(64):
        failed = _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0
        if failed and ctypes.get_errno() == 22:  # EINVAL: past the last capability
            break
    _libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    nr = _SYS_CAPSET.get(os.uname().machine)
    if nr is None:
        return False
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)(keep, keep, 0, 0, 0, 0)  # effective, permitted, inheritable
    return bool(_libc.syscall(ctypes.c_long(nr), ctypes.byref(header), ctypes.byref(data)) == 0)


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _set_death_signal(expected_parent: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:  # the parent died before the prctl took effect
        os._exit(70)


def _private_ipc() -> bool:
    """A new, empty SysV IPC namespace (needs CAP_SYS_ADMIN, i.e. root before the drop)."""
    return bool(_libc.unshare(ctypes.c_int(_CLONE_NEWIPC)) == 0)


def _drop_to_nobody() -> bool:
    """As root: become `nobody`, so host files owned by root are no longer ours to change.

    CAP_DAC_READ_SEARCH survives the change, so the interpreter can still read its standard
    library where that lives in a private home (pyenv under /root); Landlock decides what
    may be read, and every other capability goes.
    """
    if os.geteuid() != 0:
        return False
    _prctl(_PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _prctl(_PR_SET_KEEPCAPS, 0)
    return os.geteuid() == NOBODY


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
            "ipc_namespace": bool(config.get("bwrap")),
            "uid": os.geteuid(),
            "monitor": True,
        }
        self.seccomp_module: types.ModuleType | None = None
        self.seccomp_rules: types.ModuleType | None = None
        self.child_filter: Any = None
        self.tool_filter: Any = None
        self.landlock: types.ModuleType | None = None

    def prepare(self) -> None:
        """Imports only: nothing is restricted yet."""
        broken = set(self.config.get("break", ()))
        if self.config["seccomp"]:
            directory = None if "seccomp" in broken else self.config.get("seccomp_dir")
            self.seccomp_module = _import_seccomp_binding(directory)
            self.seccomp_rules = _load_file_module("_gg_seccomp", os.path.join(HERE, "seccomp.py"))
            sc, rules = self.seccomp_module, self.seccomp_rules
            # Compiled once here; every forked monitor and tool process loads them as is.
            self.child_filter = rules.CompiledFilter(rules.child_filter(sc, rules.PID_PLACEHOLDER))
            self.tool_filter = rules.CompiledFilter(rules.tool_filter(sc))
        if self.config["landlock"]:
            self.landlock = _load_file_module("_gg_landlock", os.path.join(HERE, "landlock.py"))
            if "landlock" in broken:
                self.landlock.abi_version = lambda: 0  # type: ignore[attr-defined]

    def apply_process(self, limits: dict[str, int], parent: int) -> None:
        """IPC namespace, uid drop, rlimits, prctl and capabilities for this process.

        The uid changes first: changing credentials clears the death signal and
        the dumpable flag, which are set after it.
        """
        if self.config["tier"] != "none" and os.geteuid() == 0 and not self.config.get("bwrap"):
            # Under bwrap the user, IPC and mount namespaces already do this job.
            self.isolation["ipc_namespace"] = _private_ipc()
            _drop_to_nobody()
        self.isolation["uid"] = os.geteuid()
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_FSIZE, 0)
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        _set_limit(resource.RLIMIT_MSGQUEUE, 0)
        if limits.get("cpu"):
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        self.isolation["rlimits"] = True
        _set_death_signal(parent)
        _prctl(_PR_SET_DUMPABLE, 0)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        self.isolation["no_new_privs"] = True
        keep = _CAP_DAC_READ_SEARCH if self.isolation["uid"] == NOBODY else 0
        self.isolation["caps_dropped"] = _drop_capabilities(keep)

    def apply_confinement(self) -> None:
        """Landlock and the base seccomp filter; raises Unavailable when a requested one fails."""
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
            except Exception as exc:
                raise Unavailable(f"seccomp filter could not be loaded: {exc}") from exc
            self.isolation["seccomp"] = True

    def apply_episode(self, limits: dict[str, int], parent: int) -> None:
        """In a forked episode process: its own limits, death signal and scope layer."""
        _set_death_signal(parent)
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        if self.landlock is not None and self.isolation["landlock"]:
            self.landlock.scope_self(self.isolation["landlock"])

    def apply_template(self, limits: dict[str, int], parent: int) -> None:
        """In a forked template: a memory cap for its database and the scope layer.

        Its CPU cap is a multiple of an episode's: it builds once, then only forks.
        """
        _set_death_signal(parent)
        cpu = limits["cpu"] * TEMPLATE_CPU_FACTOR
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        if self.landlock is not None and self.isolation["landlock"]:
            self.landlock.scope_self(self.isolation["landlock"])

    def seal_monitor(self) -> None:
        """The monitor, once its tool child exists: no more processes, no signals out."""
        if self.child_filter is not None:
            self.child_filter.load(os.getpid())

    def seal_tool(self) -> None:
        """The tool child: the episode filter plus no threads, no new session, no prctl."""
        if self.child_filter is not None and self.tool_filter is not None:
            self.child_filter.load(os.getpid())
            self.tool_filter.load()


# --------------------------------------------------------------------------- framing


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, cap: int | None = None) -> Any:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    size = _HEADER.unpack(header)[0]
    if cap is not None and size > cap:
        raise _ProtocolViolation(f"frame of {size} bytes exceeds {cap}")
    body = _read_exact(fd, size)
    return None if body is None else _loads(body)


def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _send(fd: int, obj: Any) -> None:
    _write_frame(fd, _dumps(obj).encode())


def _safe_text(value: Any, limit: int = 4000) -> str:
    """Diagnostic text (errors, tracebacks, stdout) as valid Unicode, bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = text[:limit] + ("…" if len(text) > limit else "")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --------------------------------------------------------------------------- the tool child


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


def _encode_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime.datetime):  # sqlite3's default adapters
        return value.isoformat(" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["$b"])
    return value


def _encode_params(params: Any) -> Any:
    if isinstance(params, dict):
        return {str(k): _encode_value(v) for k, v in params.items()}
    return [_encode_value(v) for v in params]


_ERRORS: dict[str, type[Exception]] = {
    "OverflowError": OverflowError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "MemoryError": MemoryError,
}


def _raise_remote(reply: dict[str, Any]) -> None:
    name, message = str(reply.get("error_type")), str(reply.get("error"))
    cls = _ERRORS.get(name) or getattr(sqlite3, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = sqlite3.OperationalError
    raise cls(message)


class Row(tuple):
    """What `row_factory = sqlite3.Row` gives through the proxy: index by position or name."""

    _names: tuple[str, ...] = ()

    def __new__(cls, cursor: Cursor, values: tuple[Any, ...]) -> Row:
        row = super().__new__(cls, values)
        row._names = tuple(d[0] for d in (cursor.description or ()))
        return row

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            lowered = [n.lower() for n in self._names]
            if key.lower() not in lowered:
                raise IndexError(f"No item with key {key!r}")
            key = lowered.index(key.lower())
        return super().__getitem__(key)


class Cursor:
    """A DB-API cursor whose statements run in the monitor."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []
        self._remote: int | None = None

    def _run(self, kind: str, sql: Any, params: Any) -> Cursor:
        if not isinstance(sql, str):
            raise TypeError("SQL must be a str")
        self.close()
        reply = self.connection._ask({"q": kind, "sql": sql, "params": params})
        names = reply.get("description")
        self.description = None if names is None else tuple((n, *(None,) * 6) for n in names)
        self.rowcount = int(reply.get("rowcount", -1))
        self.lastrowid = reply.get("lastrowid")
        self._take(reply)
        return self

    def _take(self, reply: dict[str, Any]) -> None:
        self._rows = [tuple(_decode_value(v) for v in row) for row in reply.get("rows") or []]
        self._rows.reverse()
        self._remote = reply.get("cursor")

    def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return self._run("execute", sql, _encode_params(parameters))

    def executemany(self, sql: str, seq_of_parameters: Any) -> Cursor:
        return self._run("many", sql, [_encode_params(p) for p in seq_of_parameters])

    def executescript(self, sql_script: str) -> Cursor:
        return self._run("script", sql_script, [])

    def _next_raw(self) -> tuple[Any, ...] | None:
        if not self._rows and self._remote is not None:
            self._take(self.connection._ask({"q": "fetch", "cursor": self._remote}))
        return self._rows.pop() if self._rows else None

    def fetchone(self) -> Any:
        row = self._next_raw()
        if row is None:
            return None
        factory = self.connection.row_factory
        if factory is sqlite3.Row:
            factory = Row
        return factory(self, row) if factory is not None else row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        out = []
        for _ in range(self.arraysize if size is None else size):
            row = self.fetchone()
            if row is None:
                break
            out.append(row)
        return out

    def fetchall(self) -> list[Any]:
        return list(iter(self.fetchone, None))

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        if self._remote is not None:
            self.connection._ask({"q": "close", "cursor": self._remote})
        self._rows, self._remote = [], None


class Connection:
    """The tool's `db`: sqlite3.Connection's everyday surface, executed by the monitor."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self._rfd, self._wfd = rfd, wfd
        self.row_factory: Any = None
        self.text_factory: Any = str
        self.isolation_level: str | None = ""
        self._status: dict[str, Any] = {"total_changes": 0, "in_transaction": False}

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        _send(self._wfd, request)
        reply = _read_frame(self._rfd)
        if not isinstance(reply, dict):
            os._exit(71)  # the monitor is gone
        self._status = {k: reply.get(k) for k in ("total_changes", "in_transaction")}
        if not reply.get("ok"):
            _raise_remote(reply)
        return reply

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, parameters: Any = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str) -> Cursor:
        return self.cursor().executescript(sql_script)

    def commit(self) -> None:
        self._ask({"q": "commit"})

    def rollback(self) -> None:
        self._ask({"q": "rollback"})

    def close(self) -> None:
        """The episode owns the connection; closing it is a no-op."""

    @property
    def total_changes(self) -> int:
        return int(self._status.get("total_changes") or 0)

    @property
    def in_transaction(self) -> bool:
        return bool(self._status.get("in_transaction"))

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> Literal[False]:
        self._ask({"q": "rollback" if exc_type else "commit"})
        return False

    def _unsupported(self, *_: Any, **__: Any) -> None:
        raise sqlite3.NotSupportedError("not available in the sandbox")

    create_function = create_aggregate = create_collation = create_window_function = (
        set_authorizer
    ) = set_progress_handler = set_trace_callback = enable_load_extension = load_extension = (
        backup
    ) = serialize = deserialize = iterdump = blobopen = _unsupported


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


class _Clock:
    """The tool child's view of wall-clock time, shifted per replay.

    Two replays of one trajectory see clocks days apart, so a tool that reads the real
    time instead of `now()` gives differing results and is caught as nondeterministic.
    """

    shift = 0.0
    _real: ClassVar[dict[str, Any]] = {
        name: getattr(time, name) for name in ("time", "monotonic", "perf_counter")
    }

    @classmethod
    def install(cls) -> None:
        real = cls._real
        time.time = lambda: real["time"]() + cls.shift
        time.time_ns = lambda: int(time.time() * 1e9)
        time.monotonic = lambda: real["monotonic"]() + cls.shift
        time.monotonic_ns = lambda: int(time.monotonic() * 1e9)
        time.perf_counter = lambda: real["perf_counter"]() + cls.shift
        time.perf_counter_ns = lambda: int(time.perf_counter() * 1e9)
        for name in ("localtime", "gmtime", "ctime"):
            original = getattr(time, name)
            setattr(
                time, name, lambda secs=None, f=original: f(time.time() if secs is None else secs)
            )
        asctime, strftime = time.asctime, time.strftime
        time.asctime = lambda t=None: asctime(time.localtime() if t is None else t)
        time.strftime = lambda fmt, t=None: strftime(fmt, time.localtime() if t is None else t)


class _ShiftedDateTime(datetime.datetime):
    """`datetime.datetime` as tool code sees it: `now()` and friends read the shifted clock.

    Installed before the runtime loads, so `runtime.now()` is an instance of it too.
    """

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> _ShiftedDateTime:
        return cls.fromtimestamp(time.time(), tz)

    @classmethod
    def utcnow(cls) -> _ShiftedDateTime:
        return cls.utcfromtimestamp(time.time())

    @classmethod
    def today(cls) -> _ShiftedDateTime:
        return cls.fromtimestamp(time.time())


_ShiftedDateTime.__name__ = _ShiftedDateTime.__qualname__ = "datetime"
_ShiftedDateTime.__module__ = "datetime"


class ToolRunner:
    """The tool child: compiles the tool code and runs calls; speaks only to its monitor."""

    def __init__(self, config: dict[str, Any], rfd: int, wfd: int) -> None:
        self.config = config
        self.rfd, self.wfd = rfd, wfd
        self.db = Connection(rfd, wfd)
        self.functions: dict[str, Any] = {}
        self.load_failure: dict[str, Any] | None = None
        self.loaded = False
        self.source = ""
        self._ballast: list[Any] = []

    def serve(self) -> None:
        sys.stdin = io.StringIO("")
        while True:
            request = _read_frame(self.rfd)
            if not isinstance(request, dict):
                return
            op = request.get("op")
            if op == "init":
                reply = self._init(request)
            elif op == "load":
                reply = self._load()
            else:
                reply = self._call(str(request.get("name")), request.get("arguments"))
            self._reply(reply)

    def _reply(self, reply: dict[str, Any]) -> None:
        try:
            payload = _dumps({"done": True, **reply}).encode()
        except (TypeError, ValueError, RecursionError, UnicodeError):
            payload = _dumps({"done": True, "status": "error", "error_type": "TypeError",
                              "error": "reply not serialisable"}).encode()  # fmt: skip
        _write_frame(self.wfd, payload)

    def _init(self, request: dict[str, Any]) -> dict[str, Any]:
        salt = int(request.get("salt") or 0)
        sys.modules["gem_graph.runtime"]._configure(
            request.get("now"), int(request.get("seed") or 0)
        )
        # Replays differ in everything a tool may not depend on: the wall clock, the
        # global `random` state and where objects live in memory.
        _Clock.shift = salt * (37 * 86400 + 5 * 3600 + 17.25)
        random.seed(salt * 0x9E3779B97F4A7C15 + os.getpid())
        self._ballast = [object() for _ in range(1 + salt * 977)] + [bytearray(64 + salt * 4099)]
        self.source = str(request.get("source") or "")
        return {"status": "ok"}

    def _load(self) -> dict[str, Any]:
        if self.load_failure is not None:
            return self.load_failure
        if self.loaded:
            return self._listing()
        self.loaded = True
        namespace: dict[str, Any] = {"__name__": "tools", "__builtins__": builtins}
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
                       "error": _safe_text(str(exc), 2000), "traceback": _traceback()}  # fmt: skip
        finally:
            sys.stdout, sys.stderr = saved
        if failure is not None:
            self.load_failure = {"ok": False, **failure, "stdout": _safe_text(out.value())}
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
        reply: dict[str, Any] = {"status": "ok", "result_json": None, "error": None,
                                 "error_type": None, "traceback": None}  # fmt: skip
        entry = self.functions.get(name)
        if entry is None or not isinstance(arguments, dict):
            reply.update(status="error", error_type="UnknownFunction",
                         error=f"no tool function named {name!r}", stdout="")  # fmt: skip
            return reply
        out = _CappedText(self.config["max_stdout_bytes"])
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        tool_error = sys.modules["gem_graph.runtime"].ToolError
        try:
            result = entry[0](self.db, **arguments)
            try:
                text = _dumps(_plain(result), allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                error = f"return value is not JSON: {_safe_text(str(exc), 300)}"
                reply.update(status="error", error_type="TypeError", error=error)
            else:
                limit = self.config["max_reply_bytes"]
                if len(text) > limit:
                    error = f"return value of {len(text)} bytes exceeds {limit}"
                    reply.update(status="output_limit", error_type="OutputLimit", error=error)
                else:
                    reply["result_json"] = text
        except tool_error as exc:
            reply.update(status="tool_error", error=str(exc), error_type="ToolError")
        except MemoryError:
            reply.update(status="memory", error_type="MemoryError", error="out of memory")
        except BaseException as exc:
            error = _safe_text(str(exc), 2000)
            reply.update(status="error", error_type=type(exc).__name__, error=error,
                         traceback=_traceback())  # fmt: skip
        finally:
            sys.stdout, sys.stderr = saved
        reply["stdout"] = _safe_text(out.value(), self.config["max_stdout_bytes"] + 64)
        return reply


_PLAIN_DEPTH = 100


def _plain(value: Any, depth: int = 0) -> Any:
    """The JSON value `value` stands for, read through the base types' own methods.

    A subclass of dict, list, str, int or float cannot choose what it serialises to by
    overriding `items`, `__iter__`, `__str__` or the like: its stored content is what counts.
    """
    if depth > _PLAIN_DEPTH:
        raise ValueError("return value nests too deeply")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v, depth + 1) for k, v in dict.items(value)}
    if isinstance(value, list | tuple):
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        return [_plain(v, depth + 1) for v in items]
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or key is True or key is False or isinstance(key, int | float):
        return str(_dumps(_plain(key)))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _traceback(limit_chars: int = 4000) -> str:
    text = traceback.format_exc()
    return _safe_text(text if len(text) <= limit_chars else "…" + text[-limit_chars:])


# --------------------------------------------------------------------------- the monitor

_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info",
                           "index_xinfo", "foreign_key_list", "foreign_key_check",
                           "foreign_keys", "user_version", "data_version"})  # fmt: skip
_DDL = frozenset(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_")) or name == "SQLITE_ALTER_TABLE"
)
_CALL_STATUSES = frozenset({"ok", "tool_error", "error", "memory", "output_limit"})


class Monitor:
    """Trusted half of an episode: owns the database, serves the tool child, writes verdicts."""

    def __init__(
        self, config: dict[str, Any], isolation: dict[str, Any], dbstate: Any, tracked: Any = None
    ) -> None:
        self.config = config
        self.isolation = isolation
        self.dbstate = dbstate
        self.tracked = tracked
        """A `TrackedDatabase`: inherited from a template, or built by `init`."""
        self.db: sqlite3.Connection | None = None
        self.tool_r = self.tool_w = -1
        self.tool_pid = 0
        self.cursors: dict[int, sqlite3.Cursor] = {}
        self.cursor_ids = itertools.count(1)
        self.rng = random.Random(0)

    # ---------------------------------------------------------------- client side

    def serve(self, rfd: int, wfd: int) -> None:
        _send(wfd, {"ready": True, "isolation": self.isolation})
        while True:
            request = _read_frame(rfd)
            if not isinstance(request, dict):
                return
            try:
                reply = self.handle(request)
            except _ProtocolViolation as exc:
                reply = {"status": "protocol_error", "error": _safe_text(str(exc))}
                _write_frame(wfd, self._encode(reply))
                return
            _write_frame(wfd, self._encode(reply))

    def _encode(self, reply: dict[str, Any]) -> bytes:
        payload = _dumps(reply).encode()
        limit = self.config["max_reply_bytes"]
        if reply.get("op") != "snapshot" and len(payload) > limit:
            reply = {"status": "output_limit", "result": None, "error_type": "OutputLimit",
                     "error": f"reply of {len(payload)} bytes exceeds {limit}",
                     "traceback": None, "stdout": ""}  # fmt: skip
            payload = _dumps(reply).encode()
        return payload

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "init":
            return self._init(request)
        if op == "load":
            return self._load()
        if op == "call":
            return self._call(request)
        if op == "state":
            return self._state(with_diff=request.get("diff") is not False)
        if op == "snapshot":
            return self._snapshot()
        return {"status": "error", "error_type": "ProtocolError", "error": f"unknown op {op!r}"}

    def _init(self, request: dict[str, Any]) -> dict[str, Any]:
        st = self.dbstate
        database = request["database"]
        try:
            if self.tracked is None:
                self.tracked = prepare_database(self.config, st, database)
            db = self.tracked.db
            st.set_deadline(db, self.config["build_timeout_s"])
            try:
                self.tracked.rebase(database.get("rows"))
            finally:
                st.set_deadline(db, None)
        except st.DatabaseBuildError as exc:
            return {"status": "invalid_database", "error": _safe_text(str(exc))}
        except MemoryError:
            return {"status": "invalid_database", "error": "out of memory building the database"}
        except sqlite3.Error as exc:
            return {"status": "invalid_database", "error": _safe_text(f"scenario rows: {exc}")}
        db.isolation_level = ""
        db.set_authorizer(self._authorize)
        salt = int(request.get("salt") or 0)
        self.rng = random.Random(salt * 7919 + 1)
        db.create_function("random", 0, self._sql_random)
        db.create_function("randomblob", 1, self._sql_randomblob)
        self.db = db
        child = {k: request.get(k) for k in ("source", "now", "seed", "salt")}
        return self._tool({"op": "init", **child})

    def _sql_random(self) -> int:
        return self.rng.randint(-(2**63), 2**63 - 1)

    def _sql_randomblob(self, n: Any) -> bytes:
        size = max(1, min(int(n) if isinstance(n, int) else 1, 1 << 20))
        return self.rng.randbytes(size)

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) or action in _DDL:
            return sqlite3.SQLITE_DENY
        # The change tracking is ours: tool SQL may neither see it nor feed it.
        ours = (trigger or "").startswith(self.dbstate.TRIGGER_PREFIX)
        note = action == sqlite3.SQLITE_FUNCTION and arg2 == self.dbstate.NOTE_FUNCTION
        if not ours and (db == "temp" or note):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name not in _READ_PRAGMAS or (name == "user_version" and arg2 is not None):
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _load(self) -> dict[str, Any]:
        reply = self._tool({"op": "load"})
        if reply.get("ok") is True:
            return {"ok": True, "functions": _clean_listing(reply.get("functions"))}
        return _clean_failure(reply)

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        db = self.db
        if db is None:
            return {"status": "error", "error_type": "ProtocolError", "error": "no init"}
        before = db.total_changes
        self.dbstate.set_deadline(db, self.config["call_timeout_s"])
        try:
            reply = self._tool({"op": "call", "name": request.get("name"),
                                "arguments": request.get("arguments")})  # fmt: skip
        finally:
            self.dbstate.set_deadline(db, None)
        out = _clean_failure(reply) if reply.get("ok") is False else self._clean_call(reply)
        try:
            if out["status"] == "ok":
                db.commit()
            else:
                db.rollback()
        except sqlite3.Error as exc:
            out = {"status": "error", "error_type": type(exc).__name__, "error": str(exc),
                   "traceback": None, "stdout": out.get("stdout", ""), "result": None}  # fmt: skip
            db.rollback()
        self.cursors.clear()
        out["changes"] = db.total_changes - before if out["status"] == "ok" else 0
        return out

    def _clean_call(self, reply: dict[str, Any]) -> dict[str, Any]:
        """Re-build the tool child's answer from plain values; its JSON is parsed strictly."""
        status = reply.get("status")
        if status not in _CALL_STATUSES:
            raise _ProtocolViolation(f"invalid call status {status!r}")
        out: dict[str, Any] = {
            "status": status,
            "result": None,
            "error": None if reply.get("error") is None else _safe_text(reply.get("error")),
            "error_type": None if reply.get("error_type") is None
            else _safe_text(reply.get("error_type"), 200),
            "traceback": None if reply.get("traceback") is None
            else _safe_text(reply.get("traceback")),
            "stdout": _safe_text(reply.get("stdout") or "", self.config["max_stdout_bytes"] + 64),
        }  # fmt: skip
        if status == "ok":
            try:
                strict = sys.modules["_gg_strictjson"]
                out["result"] = strict.loads(
                    str(reply.get("result_json")),
                    max_bytes=self.config["max_reply_bytes"],
                    max_depth=_PLAIN_DEPTH + 2,  # deep enough for anything _plain accepts
                )
            except (ValueError, RecursionError, UnicodeError) as exc:
                error = f"return value is not JSON: {_safe_text(str(exc), 300)}"
                out.update(status="error", error_type="TypeError", error=error)
        elif status == "tool_error":
            message = str(reply.get("error"))
            try:
                message.encode("utf-8")  # lone surrogates are not text
            except UnicodeError:
                out.update(status="error", error_type="UnicodeError",
                           error="the ToolError message is not valid Unicode")  # fmt: skip
            else:
                out["error"] = message[:4000]
        return out

    def _state(self, *, with_diff: bool) -> dict[str, Any]:
        assert self.db is not None and self.tracked is not None
        self.db.set_authorizer(None)
        try:
            sha256, diff = self.tracked.state(diff=with_diff)
            return {"status": "ok", "sha256": sha256, "diff": diff}
        except MemoryError:
            return {"status": "memory", "error": "out of memory hashing the state"}
        except sqlite3.Error as exc:
            return {"status": "error", "error": f"state unreadable: {exc}"}
        finally:
            self.db.set_authorizer(self._authorize)

    def _snapshot(self) -> dict[str, Any]:
        assert self.db is not None
        self.db.set_authorizer(None)
        try:
            data = self.db.serialize()
        except (MemoryError, sqlite3.Error) as exc:
            return {"op": "snapshot", "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.db.set_authorizer(self._authorize)
        return {"op": "snapshot", "status": "ok", "db": base64.b64encode(data).decode()}

    # ---------------------------------------------------------------- tool side

    def _tool(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the tool child and serve its SQL until it answers."""
        try:
            _send(self.tool_w, request)
        except OSError:
            return self._tool_gone()
        while True:
            try:
                frame = _read_frame(self.tool_r, _MAX_TOOL_FRAME)
            except (ValueError, RecursionError, UnicodeError) as exc:
                raise _ProtocolViolation(f"the tool process wrote a bad frame: {exc}") from None
            if frame is None:
                return self._tool_gone()
            if not isinstance(frame, dict):
                raise _ProtocolViolation("the tool process wrote a frame that is not an object")
            if frame.get("done") is True:
                return frame
            answer = self._sql(frame)
            answer["total_changes"] = self.db.total_changes if self.db else 0
            answer["in_transaction"] = bool(self.db and self.db.in_transaction)
            try:
                _send(self.tool_w, answer)
            except OSError:
                return self._tool_gone()

    def _tool_gone(self) -> dict[str, Any]:
        status = os.waitpid(self.tool_pid, 0)[1] if self.tool_pid else 0
        return {"ok": False, "status": "crashed", "error_type": None, "wait_status": status,
                "error": _exit_text(status)}  # fmt: skip

    def _sql(self, frame: dict[str, Any]) -> dict[str, Any]:
        db = self.db
        assert db is not None
        kind = frame.get("q")
        try:
            if kind == "commit":
                db.commit()
                return {"ok": True}
            if kind == "rollback":
                db.rollback()
                return {"ok": True}
            if kind == "close":
                self.cursors.pop(frame.get("cursor"), None)  # type: ignore[arg-type]
                return {"ok": True}
            if kind == "fetch":
                cursor = self.cursors.get(frame.get("cursor"))  # type: ignore[arg-type]
                if cursor is None:
                    return {"ok": False, "error_type": "ProgrammingError", "error": "no cursor"}
                return self._rows(cursor, frame.get("cursor"))
            sql, params = frame.get("sql"), frame.get("params")
            if not isinstance(sql, str):
                raise _ProtocolViolation("SQL is not a string")
            cursor = db.cursor()
            if kind == "execute":
                cursor.execute(sql, _decode_params(params))
            elif kind == "many":
                if not isinstance(params, list):
                    raise _ProtocolViolation("executemany parameters are not a list")
                cursor.executemany(sql, [_decode_params(p) for p in params])
            elif kind == "script":
                cursor.executescript(sql)
            else:
                raise _ProtocolViolation(f"unknown request {kind!r}")
            return self._rows(cursor, None)
        except _ProtocolViolation:
            raise
        except MemoryError:
            return {"ok": False, "error_type": "MemoryError", "error": "out of memory"}
        except (sqlite3.Error, OverflowError, ValueError, TypeError, UnicodeError) as exc:
            name = type(exc).__name__
            if isinstance(exc, UnicodeError):
                name = "ValueError"
            return {"ok": False, "error_type": name, "error": _safe_text(str(exc), 1000)}

    def _rows(self, cursor: sqlite3.Cursor, cursor_id: Any) -> dict[str, Any]:
        rows = cursor.fetchmany(_FETCH_BATCH)
        more = len(rows) == _FETCH_BATCH
        if more and cursor_id is None:
            cursor_id = next(self.cursor_ids)
            self.cursors[cursor_id] = cursor
        elif not more and cursor_id is not None:
            self.cursors.pop(cursor_id, None)
        description = cursor.description
        return {
            "ok": True,
            "rows": [[_encode_cell(v) for v in row] for row in rows],
            "cursor": cursor_id if more else None,
            "description": None if description is None else [d[0] for d in description],
            "rowcount": cursor.rowcount,
            "lastrowid": cursor.lastrowid,
        }

    def finish(self) -> None:
        """End of input: let the tool process exit and reap it, so its CPU time is counted.

        A tool process that does not exit within the grace period is left to its death
        signal, which fires as the monitor exits.
        """
        os.close(self.tool_w)
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.tool_pid, os.WNOHANG)[0]:
                    return
            time.sleep(0.002)


def _encode_cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    return value


def _decode_params(params: Any) -> Any:
    if isinstance(params, dict):
        return {str(k): _decode_param(v) for k, v in params.items()}
    if isinstance(params, list):
        return [_decode_param(v) for v in params]
    raise _ProtocolViolation("SQL parameters are neither a list nor an object")


def _decode_param(value: Any) -> Any:
    if isinstance(value, dict):
        encoded = value.get("$b")
        if not isinstance(encoded, str):
            raise _ProtocolViolation("bad blob parameter")
        return base64.b64decode(encoded)
    if isinstance(value, list):
        raise TypeError("a list cannot be an SQL parameter")
    return value


def prepare_database(config: dict[str, Any], st: Any, database: dict[str, Any]) -> Any:
    """The episode's `TrackedDatabase`, built from a spec or opened from bytes, under limits."""
    max_db = config["max_db_bytes"]
    if "bytes" in database:
        db = st.open_bytes(base64.b64decode(database["bytes"]), max_bytes=max_db)
    else:
        db = st.build_database(
            database["schema_sql"], database["seed"],
            deadline_s=config["build_timeout_s"], max_bytes=max_db,
        )  # fmt: skip
    st.set_deadline(db, config["build_timeout_s"])
    try:
        return st.TrackedDatabase(db)
    except sqlite3.Error as exc:
        raise st.DatabaseBuildError(f"the database cannot be read: {exc}") from None
    finally:
        st.set_deadline(db, None)


def _clean_listing(functions: Any) -> dict[str, Any]:
    if not isinstance(functions, dict):
        raise _ProtocolViolation("load reply without functions")
    clean: dict[str, Any] = {}
    for name, spec in functions.items():
        if not isinstance(spec, dict):
            raise _ProtocolViolation("bad function description")
        params, required = spec.get("parameters"), spec.get("required")
        if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
            raise _ProtocolViolation("bad parameter list")
        if not (isinstance(required, list) and all(isinstance(p, str) for p in required)):
            raise _ProtocolViolation("bad required list")
        clean[_safe_text(name, 200)] = {
            "parameters": [_safe_text(p, 200) for p in params],
            "required": [_safe_text(p, 200) for p in required],
            "accepts_var_kwargs": spec.get("accepts_var_kwargs") is True,
        }
    return clean


def _clean_failure(reply: dict[str, Any]) -> dict[str, Any]:
    status = reply.get("status")
    if status not in (*_CALL_STATUSES, "crashed"):
        raise _ProtocolViolation(f"invalid status {status!r}")
    out = {
        "ok": False,
        "status": status,
        "result": None,
        "error_type": None if reply.get("error_type") is None
        else _safe_text(reply.get("error_type"), 200),
        "error": _safe_text(reply.get("error") or ""),
        "traceback": None if reply.get("traceback") is None else _safe_text(reply.get("traceback")),
        "stdout": _safe_text(reply.get("stdout") or ""),
    }  # fmt: skip
    if "wait_status" in reply:
        out["wait_status"] = int(reply["wait_status"])
    return out


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the tool process was killed by signal {name}"
    return f"the tool process exited with code {os.WEXITSTATUS(status)}"


# --------------------------------------------------------------------------- entry points


def serve_episode(
    config: dict[str, Any], lock: Lockdown, isolation: dict[str, Any], tracked: Any = None
) -> None:
    """Fork the tool child, seal the monitor, serve the client on fd 0/1; never returns."""
    dbstate = sys.modules["_gg_dbstate"]
    to_tool_r, to_tool_w = os.pipe2(os.O_CLOEXEC)
    from_tool_r, from_tool_w = os.pipe2(os.O_CLOEXEC)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(to_tool_r, 0)
            os.dup2(from_tool_w, 1)
            os.closerange(3, 65536)
            lock.apply_episode(dict(config["limits"]), me)
            os.chdir("/")
            lock.seal_tool()
            _Clock.install()
            ToolRunner(config, 0, 1).serve()
        except BaseException:
            pass
        os._exit(0)
    os.close(to_tool_r)
    os.close(from_tool_w)
    monitor = Monitor(config, isolation, dbstate, tracked)
    monitor.tool_r, monitor.tool_w, monitor.tool_pid = from_tool_r, to_tool_w, pid
    try:
        lock.seal_monitor()
    except Exception as exc:
        _fail_closed(lambda obj: _send(1, obj), f"monitor lockdown failed: {exc}")
    monitor.serve(0, 1)
    monitor.finish()
    os._exit(0)


def _fail_closed(report: Any, reason: str) -> None:
    report({"unavailable": reason})
    os._exit(78)


def run_single(config: dict[str, Any]) -> None:
    """Fresh-worker mode: lock down, then serve one episode on fd 0/1."""
    lock = Lockdown(config)
    try:
        lock.prepare()
        lock.apply_process(dict(config["limits"], cpu=0), os.getppid())
        lock.apply_confinement()
        lock.apply_episode(dict(config["limits"]), os.getppid())
    except Unavailable as exc:
        _fail_closed(lambda obj: _send(1, obj), str(exc))
    except Exception as exc:
        _fail_closed(lambda obj: _send(1, obj), f"lockdown failed: {type(exc).__name__}: {exc}")
    serve_episode(config, lock, dict(lock.isolation, fork_server=False))


def run_zygote(config: dict[str, Any]) -> None:
    """Fork-server mode: lock down without tool code; fork one episode per spawn request."""
    ctl = socket.socket(fileno=int(config["ctl_fd"]))

    def report(obj: Any) -> None:
        ctl.send(_dumps(obj).encode())

    lock = Lockdown(config)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        lock.prepare()
        # Room for its own descriptors plus six per spawn still in flight (a template's
        # socket, two pipes and a pidfd while forking, three in each reply).
        in_flight = int(config.get("spawns_in_flight") or 8)
        nofile = max(64, config["limits"]["nofile"]) + 6 * in_flight
        zygote_limits = dict(config["limits"], cpu=0, nofile=nofile)
        lock.apply_process(zygote_limits, os.getppid())
        lock.apply_confinement()
    except Unavailable as exc:
        _fail_closed(report, str(exc))
    except Exception as exc:
        _fail_closed(report, f"lockdown failed: {type(exc).__name__}: {exc}")
    report({"ready": True, "isolation": lock.isolation, "pid": os.getpid()})
    me = os.getpid()

    def fork_child(request: dict[str, Any], fds: list[int]) -> tuple[int, list[int]]:
        if request.get("template"):
            if len(fds) != 1:
                raise OSError("a template spawn comes with exactly one socket")
            return _fork_with_pipes(
                lambda r, w: _template_main(config, lock, ctl, devnull, r, w, fds[0], me)
            )
        return _fork_with_pipes(
            lambda r, w: _episode_main(config, lock, ctl, devnull, r, w, me, None)
        )

    _serve_forks(ctl, report, fork_child)


def _fork_with_pipes(child: Any) -> tuple[int, list[int]]:
    """Fork `child(req_r, resp_w)`; returns its pid and our ends [req_w, resp_r]."""
    req_r, req_w = os.pipe2(os.O_CLOEXEC)
    resp_r, resp_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        for fd in (req_r, req_w, resp_r, resp_w):
            os.close(fd)
        raise
    if pid == 0:
        child(req_r, resp_w)
        os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    return pid, [req_w, resp_r]


def _serve_forks(ctl: socket.socket, report: Any, fork_child: Any) -> None:
    """A fork server's loop: one child per spawn request, exit and CPU reports; never returns.

    Children that die are reported with their CPU time; processes re-parented here (tool
    processes whose monitor was killed) are reaped too, so none is left as a zombie under
    an init that does not reap.
    """
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), 0, 0, 0)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, str] = {}
    reported = 0.0
    while True:
        readable, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = children.pop(pid, None)
            cpu = usage.ru_utime + usage.ru_stime
            own = resource.getrusage(resource.RUSAGE_SELF)
            own_cpu = own.ru_utime + own.ru_stime
            spent, reported = own_cpu - reported, own_cpu  # the server's own forking work
            if key is not None:
                report({"exited": key, "status": status, "cpu": cpu, "self_cpu": spent})
            else:  # an adopted tool process
                report({"orphan_cpu": cpu, "self_cpu": spent})
        if ctl.fileno() in readable:
            msg, given, _flags, _addr = socket.recv_fds(ctl, 65536, 1, socket.MSG_CMSG_CLOEXEC)
            if not msg:
                os._exit(0)
            request = _loads(msg)
            key = str(request["spawn"])
            try:
                pid, fds = fork_child(request, given)
            except OSError as exc:
                report({"spawn_failed": key, "error": f"{type(exc).__name__}: {exc}"})
                continue
            finally:
                for fd in given:
                    os.close(fd)
            children[pid] = key
            try:
                fds.insert(0, os.pidfd_open(pid))
                socket.send_fds(ctl, [_dumps({"spawned": key, "pid": pid}).encode()], fds)
            except OSError as exc:  # the child sees end of input on its pipe and exits
                report({"spawn_failed": key, "error": f"{type(exc).__name__}: {exc}"})
            for fd in fds:
                os.close(fd)


def _template_main(
    config: dict[str, Any], lock: Lockdown, ctl: socket.socket, devnull: int,
    req_r: int, resp_w: int, own_ctl: int, zygote: int,
) -> None:  # fmt: skip
    """A template: build one database, then fork an episode per spawn; never returns.

    Every episode forked here starts from the same pristine database and baseline digest
    (copy-on-write), so a replay costs what it changes, not what the database holds.
    """
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(req_r, 0)
        os.dup2(resp_w, 1)
        os.dup2(devnull, 2)
        devnull = 2
        ctl.detach()
        os.dup2(own_ctl, 3, inheritable=False)
        os.closerange(4, 65536)
        server = socket.socket(fileno=3)
        try:
            lock.apply_template(dict(config["limits"]), zygote)
        except Exception as exc:
            _fail_closed(lambda obj: _send(1, obj),
                         f"template lockdown failed: {type(exc).__name__}: {exc}")  # fmt: skip
        _send(1, {"ready": True, "isolation": dict(lock.isolation, fork_server=True)})
        request = _read_frame(0)
        st = sys.modules["_gg_dbstate"]
        try:
            tracked = prepare_database(config, st, dict(request["database"]))
        except st.DatabaseBuildError as exc:
            _send(1, {"status": "invalid_database", "error": _safe_text(str(exc))})
            os._exit(0)
        except MemoryError:
            _send(1, {"status": "invalid_database", "error": "out of memory building the database"})
            os._exit(0)
        _send(1, {"status": "ok"})
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        me = os.getpid()

        def report(obj: Any) -> None:
            server.send(_dumps(obj).encode())

        def fork_child(_request: dict[str, Any], _fds: list[int]) -> tuple[int, list[int]]:
            return _fork_with_pipes(
                lambda r, w: _episode_main(config, lock, server, devnull, r, w, me, tracked)
            )

        _serve_forks(server, report, fork_child)
    except BaseException:
        pass
    os._exit(0)


def _episode_main(
    config: dict[str, Any], lock: Lockdown, ctl: socket.socket, devnull: int,
    req_r: int, resp_w: int, parent: int, tracked: Any,
) -> None:  # fmt: skip
    """A forked episode process (the monitor): rewire fds, tighten, serve; never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(req_r, 0)
        os.dup2(resp_w, 1)
        os.dup2(devnull, 2)
        ctl.detach()
        os.closerange(3, 65536)
        try:
            lock.apply_episode(dict(config["limits"]), parent)
        except Exception as exc:
            _fail_closed(lambda obj: _send(1, obj),
                         f"episode lockdown failed: {type(exc).__name__}: {exc}")  # fmt: skip
        serve_episode(config, lock, dict(lock.isolation, fork_server=True), tracked)
    except BaseException:
        pass
    os._exit(0)


def main() -> None:
    mode, config = sys.argv[1], _loads(sys.argv[2])
    if mode == "zygote":  # shared by every forked episode; a fresh worker imports on demand
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    _load_file_module("_gg_dbstate", config["dbstate_path"], package=True)
    _load_file_module("_gg_strictjson", config["strictjson_path"])
    datetime.datetime = _ShiftedDateTime  # type: ignore[misc]
    _install_runtime(config["runtime_path"])
    if mode == "zygote":
        run_zygote(config)
    else:
        run_single(config)


if __name__ == "__main__":
    main()
