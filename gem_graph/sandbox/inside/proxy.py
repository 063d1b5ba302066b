"""The tool process's `db`: sqlite3's everyday surface, each statement sent to the monitor."""

from __future__ import annotations

import base64
import datetime
import os
import sqlite3
from typing import Any, Literal

from .frames import _read_frame, _send


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
