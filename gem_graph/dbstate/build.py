"""Building an episode database from schema + seed + scenario rows, under limits.

Every function here may meet untrusted SQL or rows, so building uses an authorizer,
SQLite limits and a deadline, and reading tolerates any bytes.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SCHEMA_PRAGMAS = frozenset({"foreign_keys"})
"""Pragmas a schema may set while it is built; anything else could reach outside."""

LIMITS = {
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LENGTH: 16 * 2**20,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 2**20,
    sqlite3.SQLITE_LIMIT_COLUMN: 500,
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 200,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 100,
    sqlite3.SQLITE_LIMIT_VDBE_OP: 250_000,
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 32,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 1000,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 10_000,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 32,
}
"""Caps on what one statement may ask of SQLite (untrusted SQL runs under them)."""


class DatabaseBuildError(ValueError):
    """The schema, the seed or the scenario rows could not be loaded into a database."""


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def harden(conn: sqlite3.Connection, *, max_bytes: int | None = None) -> None:
    """Apply the limits every connection holding untrusted SQL or data gets."""
    for limit, value in LIMITS.items():
        conn.setlimit(limit, value)
    conn.text_factory = _decode_text
    conn.execute("PRAGMA trusted_schema = OFF")
    if max_bytes is not None:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(16, max_bytes // page)}")


def set_deadline(conn: sqlite3.Connection, seconds: float | None) -> None:
    """Interrupt any statement on `conn` once `seconds` have passed (None: no deadline)."""
    if seconds is None:
        conn.set_progress_handler(None, 0)
        return
    end = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > end, 10_000)


def schema_authorizer(action: int, arg1: str | None, *_: object) -> int:
    """What `schema.sql` may do: no attachments, no pragmas but a safe few."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in SCHEMA_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def build_database(
    schema_sql: str,
    seed: Mapping[str, Any],
    scenario_rows: Mapping[str, Any] | None = None,
    *,
    deadline_s: float | None = 10.0,
    max_bytes: int | None = None,
) -> sqlite3.Connection:
    """A fresh in-memory database: the DDL, then the seed rows, then the scenario's rows.

    Raises `DatabaseBuildError` naming the failing part, including a schema that runs past
    `deadline_s` or grows past `max_bytes`.
    """
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    harden(conn, max_bytes=max_bytes)
    set_deadline(conn, deadline_s)
    conn.set_authorizer(schema_authorizer)
    try:
        conn.executescript(schema_sql)
        conn.set_authorizer(None)
        insert_rows(conn, check_rows(seed, "seed"), "seed")
        if scenario_rows:
            insert_rows(conn, check_rows(scenario_rows, "scenario rows"), "scenario rows")
        conn.commit()
    except DatabaseBuildError:
        conn.close()
        raise
    except (sqlite3.Error, MemoryError, OverflowError, ValueError) as exc:
        conn.close()
        raise DatabaseBuildError(f"schema.sql failed: {_sql_error(exc)}") from None
    set_deadline(conn, None)
    return conn


def _sql_error(exc: BaseException) -> str:
    text = str(exc)
    if text == "interrupted":
        return "interrupted: it ran past its time budget"
    if isinstance(exc, sqlite3.DatabaseError) and "full" in text:
        return f"{text} (the database grew past its size cap)"
    return text


def check_rows(rows: Any, what: str) -> dict[str, list[dict[str, Any]]]:
    """`{table: [row, ...]}` with SQLite-storable values, or `DatabaseBuildError`."""
    if not isinstance(rows, Mapping):
        raise DatabaseBuildError(f"{what} must be an object {{table: [row, ...]}}")
    for table, table_rows in rows.items():
        if not isinstance(table_rows, list) or not all(isinstance(r, dict) for r in table_rows):
            raise DatabaseBuildError(f"{what}: table {table!r} must map to a list of row objects")
        for index, row in enumerate(table_rows):
            for column, value in row.items():
                if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                    raise DatabaseBuildError(
                        f"{what}: {table}[{index}].{column}: integer out of SQLite's 64-bit range"
                    )
    return {str(table): list(table_rows) for table, table_rows in rows.items()}


def insert_rows(conn: sqlite3.Connection, rows: dict[str, list[dict[str, Any]]], what: str) -> None:
    """Insert checked rows; nested JSON values are stored as JSON text.

    Consecutive rows with the same columns go in one `executemany`; when one of them fails,
    the batch is replayed row by row to name the failing row.
    """
    tables = set(user_tables(conn))
    for table, table_rows in rows.items():
        if table not in tables:
            raise DatabaseBuildError(f"{what}: unknown table {table!r}")
        start = 0
        for columns, batch in itertools.groupby(table_rows, key=_column_names):
            size = len(list(batch))
            chunk = table_rows[start : start + size]
            sql = _insert_sql(table, columns)
            conn.execute("SAVEPOINT gg_insert_rows")
            try:
                conn.executemany(sql, ([_sql_value(r[c]) for c in columns] for r in chunk))
            except (sqlite3.Error, OverflowError, ValueError, RecursionError):
                conn.execute("ROLLBACK TO gg_insert_rows")
                _insert_one_by_one(conn, sql, columns, chunk, start, table, what)
            conn.execute("RELEASE gg_insert_rows")
            start += size


def _column_names(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(row)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    if not columns:
        return f"INSERT INTO {quote(table)} DEFAULT VALUES"
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"


def _insert_one_by_one(
    conn: sqlite3.Connection, sql: str, columns: tuple[str, ...], chunk: list[dict[str, Any]],
    start: int, table: str, what: str,
) -> None:  # fmt: skip
    """Name the row a failed batch stumbled on."""
    for offset, row in enumerate(chunk):
        try:
            conn.execute(sql, [_sql_value(row[c]) for c in columns])
        except (sqlite3.Error, OverflowError, ValueError, RecursionError) as exc:
            index = start + offset
            raise DatabaseBuildError(f"{what}: {table}[{index}]: {_sql_error(exc)}") from None
    raise DatabaseBuildError(f"{what}: {table}: the rows could not be inserted together")


def _sql_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


def open_bytes(data: bytes, *, max_bytes: int) -> sqlite3.Connection:
    """Open serialised database bytes defensively in a private in-memory connection."""
    if len(data) > max_bytes:
        raise DatabaseBuildError(f"database of {len(data)} bytes exceeds the cap of {max_bytes}")
    if not data.startswith(b"SQLite format 3\x00"):
        raise DatabaseBuildError("not an SQLite database (bad header)")
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.deserialize(data)
        harden(conn, max_bytes=max_bytes)
        conn.execute("PRAGMA cell_size_check = ON")
        verdict = conn.execute("PRAGMA quick_check").fetchall()
        if verdict != [("ok",)]:
            raise DatabaseBuildError(f"database failed its integrity check: {verdict[:5]!r}")
    except DatabaseBuildError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseBuildError(f"not a valid SQLite database: {exc}") from None
    return conn
