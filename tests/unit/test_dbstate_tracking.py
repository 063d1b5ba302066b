"""The tracked state (hash and diff in O(rows changed)) always equals a full re-read."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gem_graph.dbstate import TrackedDatabase, build_database, state_diff, state_hash

SCHEMA = """
PRAGMA foreign_keys = ON;
CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT UNIQUE, n INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY,
                     person TEXT REFERENCES people(id) ON DELETE CASCADE ON UPDATE CASCADE,
                     note);
CREATE TABLE notes (a, b);
CREATE TABLE pairs (a, b, v, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER people_audit AFTER UPDATE ON people
BEGIN INSERT INTO audit (what) VALUES ('changed ' || NEW.id); END;
"""
SEED = {
    "people": [{"id": f"p{i}", "email": f"e{i}", "n": i} for i in range(12)],
    "orders": [{"id": i, "person": f"p{i % 12}", "note": i} for i in range(20)],
    "notes": [{"a": i % 3, "b": i} for i in range(8)],
    "pairs": [{"a": i, "b": "x", "v": i} for i in range(5)],
}
OPERATIONS = [
    "INSERT INTO people VALUES ('q{r}', 'new{r}', {r})",
    "INSERT OR REPLACE INTO people VALUES ('p{m}', 'e{k}', 99)",  # may delete another row
    "UPDATE people SET n = n + 1 WHERE id = 'p{m}'",
    "UPDATE people SET id = 'z{r}' WHERE id = 'p{m}'",  # key change, cascades
    "DELETE FROM people WHERE id = 'p{m}'",  # cascades
    "INSERT INTO notes VALUES ({m}, {r})",
    "DELETE FROM notes WHERE b = {m}",
    "UPDATE notes SET a = 7 WHERE b = {m}",
    "INSERT OR REPLACE INTO pairs VALUES ({m}, 'x', {r})",
    "DELETE FROM pairs WHERE a = {m}",
    "UPDATE orders SET note = x'00ff' WHERE id = {m}",
    "UPDATE orders SET note = 1.0 WHERE id = {m}",  # same value, another storage class
    "UPDATE orders SET note = 1 WHERE id = {m}",
    "REPLACE INTO orders VALUES ({m}, 'p{k}', 'r')",
    "DELETE FROM notes",
]

operation = st.tuples(
    st.sampled_from(OPERATIONS),
    st.integers(0, 10**6),
    st.integers(0, 14),
    st.integers(0, 14),
    st.sampled_from(["commit", "commit", "rollback"]),
)


def tracked(rows: dict[str, list[dict[str, object]]] | None) -> tuple[TrackedDatabase, bytes]:
    db = build_database(SCHEMA, SEED)
    db.isolation_level = ""
    database = TrackedDatabase(db)
    database.rebase(rows)
    return database, db.serialize()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(operation, max_size=10),
    with_rows=st.booleans(),
)
def test_tracked_state_equals_a_full_reread(
    ops: list[tuple[str, int, int, int, str]], with_rows: bool
) -> None:
    rows = {"notes": [{"a": 9, "b": 100}], "people": [{"id": "s1", "email": "s1", "n": 1}]}
    database, baseline_bytes = tracked(rows if with_rows else None)
    db = database.db
    for sql, r, m, k, end in ops:
        with contextlib.suppress(sqlite3.Error):
            db.execute(sql.format(r=r, m=m, k=k))
        db.rollback() if end == "rollback" else db.commit()
    baseline = sqlite3.connect(":memory:")
    baseline.deserialize(baseline_bytes)
    sha, diff = database.state()
    assert sha == state_hash(db)
    assert diff == state_diff(baseline, db)


def test_scenario_rows_are_the_baseline_not_a_change() -> None:
    database, _ = tracked({"notes": [{"a": 1, "b": 2}]})
    sha, diff = database.state()
    assert diff == {}
    assert sha == state_hash(database.db)


def test_a_replace_that_deletes_an_unreported_row_is_caught() -> None:
    database, _ = tracked(None)
    database.db.execute("INSERT OR REPLACE INTO people VALUES ('new', 'e3', 0)")  # drops p3
    _, diff = database.state()
    assert [row["id"] for row in diff["people"]["deleted"]] == ["p3"]
    assert [row["id"] for row in diff["people"]["inserted"]] == ["new"]


def test_the_hash_ignores_insertion_order_and_rowids_of_keyless_tables() -> None:
    one = build_database("CREATE TABLE t (a, b);", {"t": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})
    two = build_database("CREATE TABLE t (a, b);", {"t": [{"a": 3, "b": 4}, {"a": 1, "b": 2}]})
    assert state_hash(one) == state_hash(two)
    two.execute("UPDATE t SET b = 5 WHERE a = 3")
    assert state_hash(one) != state_hash(two)


def test_a_duplicate_row_counts_twice() -> None:
    single = build_database("CREATE TABLE t (a);", {"t": [{"a": 1}]})
    double = build_database("CREATE TABLE t (a);", {"t": [{"a": 1}, {"a": 1}]})
    assert state_hash(single) != state_hash(double)


@pytest.mark.parametrize("value", [1, 1.0, "1", b"1", None])
def test_storage_classes_hash_apart(value: object) -> None:
    others = [v for v in (1, 1.0, "1", b"1", None) if not (type(v) is type(value) and v == value)]
    mine = build_database("CREATE TABLE t (a);", {})
    mine.execute("INSERT INTO t VALUES (?)", (value,))
    for other in others:
        theirs = build_database("CREATE TABLE t (a);", {})
        theirs.execute("INSERT INTO t VALUES (?)", (other,))
        assert state_hash(mine) != state_hash(theirs), (value, other)


def test_virtual_tables_are_reread_rather_than_tracked() -> None:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    except sqlite3.OperationalError as exc:
        pytest.skip(f"SQLite without FTS5: {exc}")
    database = TrackedDatabase(db)
    database.rebase(None)
    assert "docs" in database.untracked
    db.execute("INSERT INTO docs VALUES ('hello')")
    sha, diff = database.state()
    assert sha == state_hash(db)
    assert diff["docs"]["inserted"][0]["body"] == "hello"
