"""A database that knows which rows changed since its baseline, so its state costs O(changes).

Temporary triggers (invisible to the state hash, which reads only the main schema) report
the key of every row an INSERT, UPDATE or DELETE touches, foreign-key actions included,
to a Python function. The state is then the baseline's table digests, corrected by the
touched rows: their baseline values come from a pristine copy taken once, their current
values from the live database. One gap is closed by a check instead of a trigger: a
REPLACE conflict deletes rows without firing delete triggers, so when a table's row count
disagrees with what its touched rows explain, that table is re-read in full.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, NamedTuple

from .build import check_rows, insert_rows, quote, user_tables
from .digest import TableDigest, combine, schema_entries, table_digest
from .rows import Key, Row, TableShape, dump_table, table_changes, table_shape

NOTE_FUNCTION = "_gg_track_note"
"""The SQL function our triggers call; only they may call it."""
TRIGGER_PREFIX = "_gg_track_"


class TrackedDatabase:
    """`db` plus its baseline: a pristine copy, table digests and the rows changed since.

    Made once per template (cost grows with the database) and then forked: each episode
    moves its own baseline past its scenario rows with `rebase` and reads `state`.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.pristine = sqlite3.connect(":memory:", check_same_thread=False)
        self.pristine.deserialize(db.serialize())
        self.pristine.text_factory = db.text_factory
        names = user_tables(db)
        self.shapes = {name: table_shape(db, name) for name in names}
        self.schema = schema_entries(db)
        self.baseline = {name: table_digest(db, name) for name in names}
        self.overlay: dict[str, dict[Key, Row | None]] = {}
        """Baseline rows that differ from `pristine` (None: absent), per table."""
        self.full: set[str] = set()
        """Tables whose overlay holds the whole baseline (after a re-read)."""
        self.touched: dict[str, set[Key]] = {}
        self.untracked: set[str] = set()
        """Virtual tables and their shadow tables (no triggers there): always re-read."""
        db.create_function(NOTE_FUNCTION, -1, self._note)
        self.untracked.update(_virtual_and_shadow_tables(db))
        for index, shape in enumerate(self.shapes.values()):
            if shape.name not in self.untracked:
                self._install(index, shape)

    def _note(self, table: str, *key: Any) -> None:
        self.touched.setdefault(table, set()).add(key)

    def _install(self, index: int, shape: TableShape) -> None:
        table = quote(shape.name)
        name = shape.name.replace("'", "''")
        events = {
            "i": ("INSERT", ["NEW"]),
            "d": ("DELETE", ["OLD"]),
            "u": ("UPDATE", ["OLD", "NEW"]),
        }
        try:
            for tag, (event, refs) in events.items():
                notes = ", ".join(
                    f"{NOTE_FUNCTION}('{name}', "
                    + ", ".join(f"{ref}.{quote(c)}" for c in shape.key_columns)
                    + ")"
                    for ref in refs
                )
                self.db.execute(
                    f"CREATE TEMP TRIGGER {TRIGGER_PREFIX}{tag}{index} AFTER {event} "
                    f"ON main.{table} BEGIN SELECT {notes}; END"
                )
        except sqlite3.Error:
            self.untracked.add(shape.name)

    # ------------------------------------------------------------------ baseline

    def rebase(self, rows: Mapping[str, Any] | None) -> None:
        """Insert scenario rows and make the result the baseline diffs are taken from.

        Raises `DatabaseBuildError` for rows that do not fit the schema.
        """
        if rows:
            insert_rows(self.db, check_rows(rows, "scenario rows"), "scenario rows")
            self.db.commit()
        for name, change in self._changes().items():
            self.baseline[name] = change.digest
            overlay = self.overlay.setdefault(name, {})
            if change.reread:
                self.full.add(name)
                overlay.clear()
            overlay.update(change.after)
        self.touched.clear()

    # ------------------------------------------------------------------ state

    def state(self, *, diff: bool = True) -> tuple[str, dict[str, Any]]:
        """The state hash and (with `diff`) the row diff from the baseline."""
        digests = dict(self.baseline)
        changes: dict[str, Any] = {}
        for name, change in sorted(self._changes().items()):
            digests[name] = change.digest
            if diff:
                before, after = _present(change.before), _present(change.after)
                found = table_changes(self.shapes[name], before, after)
                if found is not None:
                    changes[name] = found
        return combine(self.schema, digests), changes

    def _changes(self) -> dict[str, _Change]:
        """Per table that may have changed: its digest now and its touched rows."""
        out = {}
        for name in self.touched.keys() | self.untracked:
            shape = self.shapes[name]
            if name in self.untracked:
                out[name] = self._reread(shape)
                continue
            keys = self.touched[name]
            before = {key: self._baseline_row(shape, key) for key in keys}
            after = {key: _lookup(self.db, shape, key) for key in keys}
            digest = self.baseline[name].copy()
            for key in keys:  # a row that did not change is removed and added back
                was, now = before[key], after[key]
                if was is not None:
                    digest.remove(_values(shape, was))
                if now is not None:
                    digest.add(_values(shape, now))
            (count,) = self.db.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
            if count != digest.count:  # a REPLACE deleted rows no trigger reported
                out[name] = self._reread(shape)
            else:
                out[name] = _Change(digest, before, after, reread=False)
        return out

    def _reread(self, shape: TableShape) -> _Change:
        """The whole table, when its touched rows cannot explain it."""
        current = dump_table(self.db, shape.name).rows
        baseline = self._baseline_rows(shape)
        keys = current.keys() | baseline.keys()
        before: dict[Key, Row | None] = {key: baseline.get(key) for key in keys}
        after: dict[Key, Row | None] = {key: current.get(key) for key in keys}
        return _Change(table_digest(self.db, shape.name), before, after, reread=True)

    def _baseline_rows(self, shape: TableShape) -> dict[Key, Row]:
        overlay = self.overlay.get(shape.name, {})
        rows = {} if shape.name in self.full else dict(dump_table(self.pristine, shape.name).rows)
        for key, row in overlay.items():
            if row is None:
                rows.pop(key, None)
            else:
                rows[key] = row
        return rows

    def _baseline_row(self, shape: TableShape, key: Key) -> Row | None:
        overlay = self.overlay.get(shape.name, {})
        if key in overlay or shape.name in self.full:
            return overlay.get(key)
        return _lookup(self.pristine, shape, key)


class _Change(NamedTuple):
    digest: TableDigest
    before: dict[Key, Row | None]
    after: dict[Key, Row | None]
    reread: bool


def _present(rows: dict[Key, Row | None]) -> dict[Key, Row]:
    return {key: row for key, row in rows.items() if row is not None}


def _virtual_and_shadow_tables(db: sqlite3.Connection) -> set[str]:
    """Tables a virtual table's module writes itself; a trigger on those can crash SQLite."""
    try:
        listed = db.execute("PRAGMA main.table_list").fetchall()
    except sqlite3.Error:  # SQLite < 3.37: shadow tables are named after their table
        virtual = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"
            )
        ]
        return {t for t in user_tables(db) if any(t == v or t.startswith(v + "_") for v in virtual)}
    return {row[1] for row in listed if row[2] in ("virtual", "shadow")}


def _lookup(conn: sqlite3.Connection, shape: TableShape, key: Key) -> Row | None:
    where = " AND ".join(
        "rowid = ?" if shape.rowid_key else f"{quote(c)} IS ?" for c in shape.key_columns
    )
    sql = f"SELECT {shape.select()} FROM {quote(shape.name)} WHERE {where}"
    values = conn.execute(sql, key).fetchone()
    return None if values is None else shape.split(values)[1]


def _values(shape: TableShape, row: Row) -> list[Any]:
    return [row[c] for c in shape.columns]
