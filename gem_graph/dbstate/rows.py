"""Rows as the state hash and the diff see them: table shapes, dumps and row-level diffs.

Text policy: SQLite text that is not valid UTF-8 is read with `surrogateescape`, so the
hash covers the exact stored bytes; diffs show such characters as U+FFFD.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .build import quote, user_tables

Key = tuple[Any, ...]
"""A row's identity: its declared primary key values, or `(rowid,)` without one."""
Row = dict[str, Any]
"""A row as JSON-native values (blobs as `{"$blob": hex}`), keyed by column name."""


@dataclass(frozen=True)
class TableShape:
    """What identifies and what makes up a row of one table."""

    name: str
    columns: list[str]
    key_columns: list[str]
    """Declared primary key columns in key order; `["rowid"]` for a table without one."""

    @property
    def rowid_key(self) -> bool:
        return self.key_columns == ["rowid"]

    def select(self) -> str:
        """The SELECT list of a row: the key first when it is the rowid, then the columns."""
        columns = ", ".join(quote(c) for c in self.columns)
        return f"rowid, {columns}" if self.rowid_key else columns

    def split(self, values: tuple[Any, ...]) -> tuple[Key, Row]:
        """One fetched row (as `select()` lists it) as its key and its JSON-native row."""
        if self.rowid_key:
            return (values[0],), json_row(zip(self.columns, values[1:], strict=True))
        row = dict(zip(self.columns, values, strict=True))
        return tuple(row[c] for c in self.key_columns), json_row(row.items())


def table_shape(conn: sqlite3.Connection, table: str) -> TableShape:
    info = conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    declared = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
    return TableShape(table, [row[1] for row in info], declared or ["rowid"])


@dataclass(frozen=True)
class TableDump:
    shape: TableShape
    rows: dict[Key, Row]


def dump_table(conn: sqlite3.Connection, table: str) -> TableDump:
    shape = table_shape(conn, table)
    cursor = conn.execute(f"SELECT {shape.select()} FROM {quote(table)}")
    return TableDump(shape, dict(shape.split(values) for values in cursor))


def dump_all(conn: sqlite3.Connection) -> dict[str, TableDump]:
    return {name: dump_table(conn, name) for name in user_tables(conn)}


def table_changes(
    shape: TableShape, old_rows: Mapping[Key, Row], new_rows: Mapping[Key, Row]
) -> dict[str, list[Any]] | None:
    """`{"inserted", "updated", "deleted"}` between two sets of rows, or None when equal.

    Only keys present on some side matter, so passing just the rows that may have changed
    gives the same answer as passing whole tables.
    """
    inserted = [_shown(new_rows[k]) for k in sorted_keys(new_rows.keys() - old_rows.keys())]
    deleted = [_shown(old_rows[k]) for k in sorted_keys(old_rows.keys() - new_rows.keys())]
    updated = []
    for key in sorted_keys(old_rows.keys() & new_rows.keys()):
        was, now = old_rows[key], new_rows[key]
        changed = sorted(c for c in set(was) | set(now) if not _same(was.get(c), now.get(c)))
        if changed:
            key_row = json_row(zip(shape.key_columns, key, strict=True))
            updated.append(
                {
                    "key": _shown(key_row),
                    "before": _shown({c: was.get(c) for c in changed}),
                    "after": _shown({c: now.get(c) for c in changed}),
                }
            )
    if inserted or updated or deleted:
        return {"inserted": inserted, "updated": updated, "deleted": deleted}
    return None


def state_diff(before: sqlite3.Connection, after: sqlite3.Connection) -> dict[str, Any]:
    """Row-level changes per table, keyed by primary key (rowid when a table has none).

    `{table: {"inserted": [row], "updated": [{"key", "before", "after"}], "deleted": [row]}}`;
    `before`/`after` of an update hold only the changed columns. Unchanged tables are
    omitted; tables and rows come in a fixed order.
    """
    old_dumps, new_dumps = dump_all(before), dump_all(after)
    diff: dict[str, Any] = {}
    for name in sorted(old_dumps.keys() | new_dumps.keys()):
        old, new = old_dumps.get(name), new_dumps.get(name)
        shape = (new or old).shape  # type: ignore[union-attr]
        changes = table_changes(shape, old.rows if old else {}, new.rows if new else {})
        if changes is not None:
            diff[name] = changes
    return diff


def json_row(items: Iterable[tuple[str, Any]]) -> Row:
    return {column: json_value(value) for column, value in items}


def json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": value.hex()}
    return value


def _shown(row: Row) -> Row:
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
    if isinstance(value, bytes):
        return (3, value.hex())
    return (4, canonical_json(value))


def sorted_keys(keys: Iterable[Key]) -> list[Key]:
    return sorted(keys, key=lambda key: tuple(_sort_key(v) for v in key))


def canonical_json(value: Any) -> str:
    return _CANONICAL(value)


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
