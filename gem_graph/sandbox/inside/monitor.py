"""The monitor: owns the database, serves the tool process's SQL, writes every verdict."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import random
import sqlite3
import sys
import time
from typing import Any

from .frames import (
    _PLAIN_DEPTH,
    _dumps,
    _ProtocolViolation,
    _read_frame,
    _safe_text,
    _send,
    _write_frame,
)
from .replies import (
    _CALL_STATUSES,
    _clean_failure,
    _clean_listing,
    _decode_params,
    _encode_cell,
    _exit_text,
)

_MAX_TOOL_FRAME = 32 * 2**20
_FETCH_BATCH = 256


_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info",
                           "index_xinfo", "foreign_key_list", "foreign_key_check",
                           "foreign_keys", "user_version", "data_version"})  # fmt: skip
_DDL = frozenset(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_")) or name == "SQLITE_ALTER_TABLE"
)


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
