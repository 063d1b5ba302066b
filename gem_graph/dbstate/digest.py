"""The state hash: what a database holds, as one sha256 that can follow changes row by row.

Format 2. Each table's rows enter a multiset hash (AdHash: the sum, modulo 2**4096, of a
4096-bit SHAKE-256 digest of each row's canonical JSON). A sum needs no order, so the hash
does not depend on page layout, insertion order or rowids of tables without a primary key,
and adding or removing one row updates it in constant time. By the generalised birthday
bound a 4096-bit sum resists collisions to about 2**128 work, as sha256 does. The state
hash is the sha256 of the schema plus, per table, its columns, row count and sum.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .build import quote, user_tables
from .rows import canonical_json, json_value

STATE_HASH_VERSION = 2
"""Bumped whenever the same database would hash differently; records carry it."""
_BITS = 4096
_MASK = (1 << _BITS) - 1
_ELEMENT_BYTES = _BITS // 8


def row_element(values: Sequence[Any]) -> int:
    """One row's contribution: its JSON-native values in column order, as a 4096-bit number."""
    text = canonical_json(values)
    digest = hashlib.shake_256(text.encode("utf-8", "surrogateescape")).digest(_ELEMENT_BYTES)
    return int.from_bytes(digest, "little")


@dataclass
class TableDigest:
    """A table's columns, row count and row-sum: everything the state hash needs of it."""

    columns: list[str]
    count: int = 0
    total: int = 0

    def add(self, values: Sequence[Any]) -> None:
        self.count += 1
        self.total = (self.total + row_element(values)) & _MASK

    def remove(self, values: Sequence[Any]) -> None:
        self.count -= 1
        self.total = (self.total - row_element(values)) & _MASK

    def copy(self) -> TableDigest:
        return TableDigest(list(self.columns), self.count, self.total)


def table_digest(conn: sqlite3.Connection, table: str) -> TableDigest:
    """Read a whole table once (the only pass whose cost grows with its size)."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({quote(table)})")]
    digest = TableDigest(columns)
    select = ", ".join(quote(c) for c in columns)
    total = 0
    count = 0
    for values in conn.execute(f"SELECT {select} FROM {quote(table)}"):
        try:
            total += row_element(values)
        except TypeError:  # a blob: JSON cannot hold bytes as they are
            total += row_element([json_value(v) for v in values])
        count += 1
    digest.count, digest.total = count, total & _MASK
    return digest


def schema_entries(conn: sqlite3.Connection) -> list[list[Any]]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    return [list(row) for row in rows]


def combine(schema: Iterable[Sequence[Any]], tables: Mapping[str, TableDigest]) -> str:
    """The state hash from the schema and every table's digest."""
    payload = {
        "version": STATE_HASH_VERSION,
        "schema": [list(entry) for entry in schema],
        "tables": {
            name: {"columns": d.columns, "rows": d.count, "sum": format(d.total, "x")}
            for name, d in sorted(tables.items())
        },
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogateescape")).hexdigest()


def state_hash(conn: sqlite3.Connection) -> str:
    """sha256 of the schema and every row (format 2), read in one pass over each table."""
    tables = {name: table_digest(conn, name) for name in user_tables(conn)}
    return combine(schema_entries(conn), tables)
