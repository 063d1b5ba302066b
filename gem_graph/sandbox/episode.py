"""One episode (trajectory): a private worker, its database, its tool code."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from types import TracebackType
from typing import Any, Literal, TypedDict

from gem_graph.dbstate import DatabaseBuildError, open_bytes
from gem_graph.sandbox.errors import (
    EpisodeClosed,
    InvalidDatabase,
    SandboxError,
    SandboxInfrastructureError,
)
from gem_graph.sandbox.process import (
    BadFrame,
    FrameTooLarge,
    WorkerHandle,
    describe_exit,
    encode_frame,
    read_frame,
)
from gem_graph.settings import SandboxSettings

CallStatus = Literal[
    "ok", "tool_error", "error", "timeout", "cpu_limit", "memory", "output_limit", "crashed",
    "protocol_error",
]  # fmt: skip
FATAL = frozenset({"timeout", "cpu_limit", "crashed", "protocol_error", "output_limit"})
"""Call statuses after which the episode's worker is gone: nothing more runs in it."""
LIMIT_HIT = FATAL | {"memory"}
"""Call statuses where the code ran into a sandbox limit (a `sandbox_violation`)."""
_WORKER_STATUSES = frozenset(
    {"ok", "tool_error", "error", "memory", "output_limit", "crashed", "protocol_error"}
)
_TRACEBACK_CHARS = 4000
CLOSE_GRACE_S = 0.5


class CallResult(TypedDict):
    """What one tool call did; JSON-native. `changes`: rows it changed (0 unless ok)."""

    status: CallStatus
    result: Any
    error: str | None
    error_type: str | None
    traceback: str | None
    stdout: str
    elapsed_ms: float
    changes: int


class DatabaseSpec(TypedDict, total=False):
    """An episode's database, built inside the sandbox: DDL, seed rows, scenario rows.

    `key` names the (schema_sql, seed) pair for the template cache, so a caller that
    already knows it spares the sandbox hashing the seed on every episode.
    """

    schema_sql: str
    seed: dict[str, Any]
    rows: dict[str, Any] | None
    key: str


class EpisodeState(TypedDict):
    """The episode's database as its monitor sees it: a content hash and the row diff."""

    sha256: str
    diff: dict[str, Any]


class _Fatal(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _opt_str(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class Episode:
    """A live worker serving one trajectory. Calls are serialized; the worker is never reused."""

    def __init__(
        self, handle: WorkerHandle, settings: SandboxSettings, isolation: dict[str, Any]
    ) -> None:
        self._handle = handle
        self._settings = settings
        self._isolation = isolation
        self._lock = asyncio.Lock()
        self._dead: tuple[str, str] | None = None
        self._closed = False
        self._deadline = time.monotonic() + settings.episode_timeout_s

    @property
    def isolation(self) -> dict[str, Any]:
        """Which layers applied to this episode's worker."""
        return dict(self._isolation)

    @property
    def pid(self) -> int | None:
        """The worker's pid as seen by this process (for tests and diagnostics)."""
        return self._handle.pid

    @property
    def dead(self) -> bool:
        return self._dead is not None

    async def _request(
        self, payload: dict[str, Any], cap: int, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one request and read its reply within the per-call and episode deadlines."""
        if self._closed:
            raise _Fatal("crashed", "episode is closed")
        if self._dead is not None:
            raise _Fatal(*self._dead)
        handle = self._handle
        per_call = timeout or self._settings.call_timeout_s
        left = self._deadline - time.monotonic()
        limit = min(per_call, left)
        try:
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(limit):
                handle.writer.write(encode_frame(payload))
                await handle.writer.drain()
                return await read_frame(handle.reader, cap)
        except TimeoutError:
            fatal = ("timeout", f"call exceeded {per_call}s; worker killed")
            if limit < per_call:
                budget = self._settings.episode_timeout_s
                fatal = ("timeout", f"episode exceeded its {budget}s budget; worker killed")
            status, cpu = None, None
            await handle.kill()
            status, cpu = await handle.exit_info()
            if status is not None:
                kind, message = describe_exit(status, cpu, self._settings.cpu_seconds)
                if kind == "cpu_limit":
                    fatal = (kind, message)
        except FrameTooLarge as exc:
            await handle.kill()
            fatal = ("output_limit", f"{exc}; worker killed")
        except BadFrame as exc:
            await handle.kill()
            fatal = ("protocol_error", f"{exc}; worker killed")
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError, OSError):
            await handle.kill()
            status, cpu = await handle.exit_info()
            fatal = describe_exit(status, cpu, self._settings.cpu_seconds)
        self._dead = fatal
        if handle.infrastructure_lost():
            raise SandboxInfrastructureError(f"the fork server died under the episode ({fatal[1]})")
        raise _Fatal(*fatal)

    async def _init(
        self, source: str, database: bytes | DatabaseSpec, now: str | None, seed: int, salt: int
    ) -> None:
        if isinstance(database, bytes | bytearray):
            spec: dict[str, Any] = {"bytes": base64.b64encode(bytes(database)).decode()}
        elif "schema_sql" in database:
            spec = {"schema_sql": database["schema_sql"],
                    "seed": database.get("seed") or {}, "rows": database.get("rows")}  # fmt: skip
        else:  # the worker was forked from a template holding the schema and seed
            spec = {"rows": database.get("rows")}
        request = {"op": "init", "source": source, "database": spec, "now": now, "seed": seed,
                   "salt": salt}  # fmt: skip
        async with self._lock:
            try:
                reply = await self._request(request, 65536, self._settings.build_timeout_s + 2)
            except _Fatal as exc:
                # A schema that runs too long is stopped by the monitor's own build deadline
                # (an invalid_database reply); a worker that does not answer at all, within
                # a margin past it, is the machine's failure.
                await self.close()
                raise SandboxInfrastructureError(
                    f"worker failed to open the episode: {exc.message}"
                ) from exc
        status = reply.get("status")
        if status == "invalid_database":
            await self.close()
            raise InvalidDatabase(_opt_str(reply.get("error"), 2000) or "invalid database")
        if status != "ok":
            await self.close()
            raise SandboxError(f"worker rejected the episode: {_opt_str(reply.get('error'), 2000)}")

    async def load(self) -> dict[str, Any]:
        """Execute the tool source once; list the tool functions (first parameter `db`)."""
        async with self._lock:
            try:
                reply = await self._request({"op": "load"}, self._settings.max_reply_bytes)
            except _Fatal as exc:
                return {"ok": False, "status": exc.status, "error_type": None, "error": exc.message}
        try:
            return _validated_listing(reply)
        except BadFrame as exc:
            await self._kill_for("protocol_error", str(exc))
            return {"ok": False, "status": "protocol_error", "error_type": None, "error": str(exc)}

    async def call(self, name: str, arguments: dict[str, Any]) -> CallResult:
        """Run `name(db, **arguments)` in the worker. Never raises for what the tool does."""
        start = time.perf_counter()
        cap = self._settings.max_reply_bytes + 4 * self._settings.max_stdout_bytes + 65536
        async with self._lock:
            try:
                reply = await self._request(
                    {"op": "call", "name": name, "arguments": arguments}, cap
                )
                result = await self._validated_call(reply)
            except _Fatal as exc:
                result = _failure(exc.status, exc.message)
            except BadFrame as exc:
                await self._kill_for("protocol_error", str(exc))
                result = _failure("protocol_error", str(exc))
        result["elapsed_ms"] = (time.perf_counter() - start) * 1000.0
        return result

    async def _validated_call(self, reply: dict[str, Any]) -> CallResult:
        status = reply.get("status")
        if status not in _WORKER_STATUSES:
            raise BadFrame(f"reply has an invalid status {status!r}")
        if status in ("crashed", "protocol_error"):
            message = _opt_str(reply.get("error"), 4000) or status
            if status == "crashed" and isinstance(reply.get("wait_status"), int):
                kind, text = describe_exit(reply["wait_status"], None, self._settings.cpu_seconds)
                status, message = kind, text
            await self._kill_for(status, message)
            return _failure(status, message)
        stdout = reply.get("stdout", "")
        if not isinstance(stdout, str):
            raise BadFrame("reply stdout is not a string")
        cap = self._settings.max_stdout_bytes
        if len(stdout) > cap + 64:
            stdout = stdout[:cap] + "\n…[stdout truncated]"
        return CallResult(
            status=status,
            result=reply.get("result") if status == "ok" else None,
            error=_opt_str(reply.get("error"), 4000),
            error_type=_opt_str(reply.get("error_type"), 200),
            traceback=_opt_str(reply.get("traceback"), _TRACEBACK_CHARS),
            stdout=stdout,
            elapsed_ms=0.0,
            changes=int(reply.get("changes") or 0) if status == "ok" else 0,
        )

    async def state(self, *, diff: bool = True) -> EpisodeState:
        """The database's content hash and row diff since the start, computed by the monitor.

        `diff=False` skips the diff (an empty one comes back) where only the hash is
        compared, as in a determinism replay.
        """
        request = {"op": "state", "diff": diff}
        async with self._lock:
            try:
                reply = await self._request(request, self._settings.max_reply_bytes + 4096)
            except _Fatal as exc:
                raise EpisodeClosed(f"no state: worker is dead ({exc.message})") from exc
        sha, rows = reply.get("sha256"), reply.get("diff")
        if reply.get("status") != "ok" or not isinstance(sha, str) or not isinstance(rows, dict):
            raise InvalidDatabase(
                f"the state could not be read: {_opt_str(reply.get('error'), 500)}"
            )
        if len(sha) != 64:
            raise InvalidDatabase("the state hash is malformed")
        return EpisodeState(sha256=sha, diff=rows)

    async def snapshot(self) -> bytes:
        """The current database bytes, opened defensively once (diagnostics and tests)."""
        max_db = self._settings.max_db_bytes
        cap = 4 * (max_db // 3 + 1) + 65536
        async with self._lock:
            try:
                reply = await self._request({"op": "snapshot"}, cap)
            except _Fatal as exc:
                raise EpisodeClosed(f"no database: worker is dead ({exc.message})") from exc
        if reply.get("status") != "ok":
            raise InvalidDatabase(f"worker returned no database: {reply.get('error')!r}")
        encoded = reply.get("db")
        if not isinstance(encoded, str) or len(encoded) > cap:
            raise InvalidDatabase("worker returned no database bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidDatabase(f"database bytes are not base64: {exc}") from exc
        try:
            open_bytes(data, max_bytes=max_db).close()
        except DatabaseBuildError as exc:
            raise InvalidDatabase(str(exc)) from exc
        return data

    async def _kill_for(self, status: str, message: str) -> None:
        self._dead = (status, message)
        await self._handle.kill()

    async def close(self) -> None:
        """End the episode; idempotent.

        A live worker is asked to exit (end of input), so its monitor reaps the tool process
        and the episode's whole CPU time is accounted for; whatever is still alive after a
        short grace period is killed.
        """
        if self._closed:
            return
        self._closed = True
        if self._dead is None:
            with contextlib.suppress(Exception):
                self._handle.writer.close()
                await asyncio.wait_for(self._handle.exit_info(), CLOSE_GRACE_S)
        with contextlib.suppress(Exception):
            await self._handle.kill()

    async def __aenter__(self) -> Episode:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _failure(status: str, message: str) -> CallResult:
    return CallResult(status=status, result=None, error=message, error_type=None,  # type: ignore[typeddict-item]
                      traceback=None, stdout="", elapsed_ms=0.0, changes=0)  # fmt: skip


def _validated_listing(reply: dict[str, Any]) -> dict[str, Any]:
    """Check the shape of a load() reply coming from the untrusted worker."""
    if reply.get("ok") is True:
        functions = reply.get("functions")
        if not isinstance(functions, dict):
            raise BadFrame("load reply without functions")
        clean: dict[str, Any] = {}
        for name, spec in functions.items():
            if not isinstance(spec, dict):
                raise BadFrame("bad function description")
            params, required = spec.get("parameters"), spec.get("required")
            if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
                raise BadFrame("bad parameter list")
            if not (isinstance(required, list) and all(isinstance(p, str) for p in required)):
                raise BadFrame("bad required list")
            clean[name] = {"parameters": params, "required": required,
                           "accepts_var_kwargs": bool(spec.get("accepts_var_kwargs"))}  # fmt: skip
        return {"ok": True, "functions": clean}
    status = reply.get("status")
    if status not in _WORKER_STATUSES:
        raise BadFrame(f"load reply has an invalid status {status!r}")
    return {
        "ok": False,
        "status": status,
        "error_type": _opt_str(reply.get("error_type"), 200),
        "error": _opt_str(reply.get("error"), 4000),
        "traceback": _opt_str(reply.get("traceback"), _TRACEBACK_CHARS),
        "stdout": _opt_str(reply.get("stdout"), 4000) or "",
    }
