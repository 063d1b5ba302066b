"""Defensive checks of database bytes that come back from an untrusted worker."""

from __future__ import annotations

import sqlite3

from gem_graph.sandbox.errors import InvalidDatabase

SQLITE_MAGIC = b"SQLite format 3\x00"
SchemaRow = tuple[str, str, str, str | None]


def open_defensively(data: bytes, max_bytes: int) -> sqlite3.Connection:
    """Deserialize `data` into a private in-memory connection after size and integrity checks.

    `trusted_schema=OFF` keeps functions in views/triggers from running during inspection.
    """
    if len(data) > max_bytes:
        raise InvalidDatabase(f"database of {len(data)} bytes exceeds the cap of {max_bytes}")
    if not data.startswith(SQLITE_MAGIC):
        raise InvalidDatabase("not an SQLite database (bad header)")
    con = sqlite3.connect(":memory:")
    try:
        con.execute("PRAGMA trusted_schema=OFF")
        con.deserialize(data)
        con.execute("PRAGMA trusted_schema=OFF")
        con.execute("PRAGMA cell_size_check=ON")
        rows = con.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            raise InvalidDatabase(f"quick_check failed: {rows[:5]!r}")
    except sqlite3.Error as exc:
        con.close()
        raise InvalidDatabase(f"database rejected: {type(exc).__name__}: {exc}") from exc
    except InvalidDatabase:
        con.close()
        raise
    return con


def schema_of(con: sqlite3.Connection) -> list[SchemaRow]:
    """Every schema object (tables, indexes, views, triggers), sorted; statistics ignored."""
    try:
        rows = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name"
        ).fetchall()
    except sqlite3.Error as exc:
        raise InvalidDatabase(f"unreadable schema: {exc}") from exc
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def validate(data: bytes, expected_schema: list[SchemaRow], max_bytes: int) -> None:
    """Raise InvalidDatabase unless `data` is intact and has exactly `expected_schema`."""
    con = open_defensively(data, max_bytes)
    try:
        schema = schema_of(con)
    finally:
        con.close()
    if schema != expected_schema:
        before, after = set(expected_schema), set(schema)
        added = sorted(f"{t} {n}" for t, n, _, _ in after - before)
        removed = sorted(f"{t} {n}" for t, n, _, _ in before - after)
        raise InvalidDatabase(f"schema changed: added {added}, removed or altered {removed}")
