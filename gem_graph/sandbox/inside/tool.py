"""The tool process: loads the tool code and runs one call per request, in a shifted clock."""

from __future__ import annotations

import builtins
import datetime
import inspect
import io
import os
import random
import sys
import time
import traceback
from typing import Any, ClassVar

from .frames import _PLAIN_DEPTH, _dumps, _read_frame, _safe_text, _write_frame
from .proxy import Connection


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
