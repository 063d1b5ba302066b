"""Episode databases: build one from schema + seed + scenario rows, hash it, diff two of them.

Stdlib only, because the sandbox monitor loads this file by path (it runs `python -S`
without the package). Every function here may meet untrusted SQL or rows, so building
uses an authorizer, SQLite limits and a deadline, and reading tolerates any bytes.

Text policy: SQLite text that is not valid UTF-8 is read with `surrogateescape`, so the
hash covers the exact stored bytes; diffs show such characters as U+FFFD.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
    """Insert checked rows; nested JSON values are stored as JSON text."""
    tables = set(user_tables(conn))
    for table, table_rows in rows.items():
        if table not in tables:
            raise DatabaseBuildError(f"{what}: unknown table {table!r}")
        for index, row in enumerate(table_rows):
            columns = list(row)
            if not columns:
                sql = f"INSERT INTO {quote(table)} DEFAULT VALUES"
            else:
                names = ", ".join(quote(c) for c in columns)
                marks = ", ".join("?" for _ in columns)
                sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"
            try:
                conn.execute(sql, [_sql_value(row[c]) for c in columns])
            except (sqlite3.Error, OverflowError, ValueError, RecursionError) as exc:
                raise DatabaseBuildError(f"{what}: {table}[{index}]: {_sql_error(exc)}") from None


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


# ---- hashes and diffs ---------------------------------------------------------------------


@dataclass(frozen=True)
class TableDump:
    columns: list[str]
    key_columns: list[str]
    rows: dict[tuple[Any, ...], dict[str, Any]]


def dump_table(conn: sqlite3.Connection, table: str) -> TableDump:
    info = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    columns = [row[1] for row in info]
    declared = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
    select = ", ".join(quote(c) for c in columns)
    if declared:
        cursor = conn.execute(f"SELECT {select} FROM {quote(table)}")
        records = [dict(zip(columns, values, strict=True)) for values in cursor]
        rows = {tuple(_json_value(r[c]) for c in declared): _json_row(r) for r in records}
    else:
        cursor = conn.execute(f"SELECT rowid, {select} FROM {quote(table)}")
        rows = {
            (values[0],): _json_row(dict(zip(columns, values[1:], strict=True)))
            for values in cursor
        }
    return TableDump(columns=columns, key_columns=declared or ["rowid"], rows=rows)


def table_digest(dump: TableDump) -> dict[str, Any]:
    """The canonical content of one table, as it enters the state hash."""
    if dump.key_columns == ["rowid"]:
        ordered = sorted(dump.rows.values(), key=canonical_json)
    else:
        ordered = [dump.rows[key] for key in sorted_keys(set(dump.rows))]
    return {"columns": dump.columns, "rows": [[row[c] for c in dump.columns] for row in ordered]}


def dump_all(conn: sqlite3.Connection) -> dict[str, TableDump]:
    """Every user table's rows, read once for both the hash and the diff."""
    return {name: dump_table(conn, name) for name in user_tables(conn)}


def state_hash(conn: sqlite3.Connection, dumps: dict[str, TableDump] | None = None) -> str:
    """sha256 of the schema and every row, independent of page layout and insertion order.

    Rows sort by primary key; tables without a declared key sort by their full content,
    because their rowids only reflect insertion order. `dumps`: `dump_all(conn)`, if read.
    """
    schema = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    dumps = dump_all(conn) if dumps is None else dumps
    tables = {name: table_digest(dump) for name, dump in dumps.items()}
    payload = {"schema": [list(entry) for entry in schema], "tables": tables}
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogateescape")).hexdigest()


def state_diff(
    before: sqlite3.Connection,
    after: sqlite3.Connection,
    after_dumps: dict[str, TableDump] | None = None,
) -> dict[str, Any]:
    """Row-level changes per table, keyed by primary key (rowid when a table has none).

    `{table: {"inserted": [row], "updated": [{"key", "before", "after"}], "deleted": [row]}}`;
    `before`/`after` of an update hold only the changed columns. Unchanged tables are
    omitted; tables and rows come in a fixed order. `after_dumps`: `dump_all(after)`, if read.
    """
    old_dumps = dump_all(before)
    new_dumps = dump_all(after) if after_dumps is None else after_dumps
    diff: dict[str, Any] = {}
    for name in sorted(set(old_dumps) | set(new_dumps)):
        old = old_dumps.get(name)
        new = new_dumps.get(name)
        old_rows = old.rows if old else {}
        new_rows = new.rows if new else {}
        reference = new or old
        key_columns = reference.key_columns if reference else []
        inserted = [_shown(new_rows[k]) for k in sorted_keys(set(new_rows) - set(old_rows))]
        deleted = [_shown(old_rows[k]) for k in sorted_keys(set(old_rows) - set(new_rows))]
        updated = []
        for key in sorted_keys(set(old_rows) & set(new_rows)):
            was, now = old_rows[key], new_rows[key]
            changed = sorted(c for c in set(was) | set(now) if not _same(was.get(c), now.get(c)))
            if changed:
                updated.append(
                    {
                        "key": _shown(dict(zip(key_columns, key, strict=True))),
                        "before": _shown({c: was.get(c) for c in changed}),
                        "after": _shown({c: now.get(c) for c in changed}),
                    }
                )
        if inserted or updated or deleted:
            diff[name] = {"inserted": inserted, "updated": updated, "deleted": deleted}
    return diff


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {column: _json_value(value) for column, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": value.hex()}
    return value


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row as diffs show it: text that was not valid UTF-8 carries U+FFFD."""
    return {column: _valid_text(value) for column, value in row.items()}


def _valid_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _sort_key(value: Any) -> tuple[int, Any]:
    # SQLite's own order across storage classes: NULL, numbers, text, blob.
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, canonical_json(value))


def sorted_keys(keys: set[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(keys, key=lambda key: tuple(_sort_key(v) for v in key))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


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
