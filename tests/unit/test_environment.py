"""The environment library: building databases, row-level diffs and stable state hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gem_graph.environment import (
    DatabaseBuildError,
    EnvironmentFormatError,
    Manifest,
    build_database,
    database_bytes,
    load_environment,
    make_environment,
    open_database_bytes,
    state_diff,
    state_hash,
)

SCHEMA = """
CREATE TABLE items (item_id TEXT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL);
CREATE TABLE notes (body TEXT NOT NULL);
CREATE TABLE pairs (a TEXT, b INTEGER, label TEXT, PRIMARY KEY (a, b));
"""
SEED = {
    "items": [
        {"item_id": "i1", "name": "bolt", "qty": 5},
        {"item_id": "i2", "name": "nut", "qty": 0},
    ],
    "notes": [{"body": "first"}],
}


def test_build_database_loads_seed_and_scenario_rows() -> None:
    conn = build_database(SCHEMA, SEED, {"items": [{"item_id": "i3", "name": "gear", "qty": 2}]})
    rows = conn.execute("SELECT item_id, qty FROM items ORDER BY item_id").fetchall()
    assert rows == [("i1", 5), ("i2", 0), ("i3", 2)]


def test_nested_values_are_stored_as_json_text() -> None:
    schema = "CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT);"
    conn = build_database(schema, {"t": [{"k": "a", "v": [1, 2]}]})
    assert json.loads(conn.execute("SELECT v FROM t").fetchone()[0]) == [1, 2]


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ({"missing": [{"x": 1}]}, "unknown table 'missing'"),
        ({"items": [{"item_id": "i1", "name": "dup", "qty": 1}]}, "UNIQUE"),
        ({"items": [{"item_id": "i9", "nope": 1}]}, "nope"),
        ({"items": "not a list"}, "list of row objects"),
    ],
)
def test_bad_scenario_rows_are_clear_errors(rows: dict, fragment: str) -> None:
    with pytest.raises(DatabaseBuildError, match=fragment):
        build_database(SCHEMA, SEED, rows)


def test_schema_cannot_attach_files(tmp_path: Path) -> None:
    target = tmp_path / "escape.db"
    for ddl in (f"ATTACH '{target}' AS x;", f"VACUUM INTO '{target}';"):
        with pytest.raises(DatabaseBuildError, match=r"schema\.sql failed"):
            build_database(SCHEMA + ddl, {})
    assert not target.exists()


def test_database_bytes_round_trip() -> None:
    conn = build_database(SCHEMA, SEED)
    copy = open_database_bytes(database_bytes(conn))
    assert state_hash(copy) == state_hash(conn)
    with pytest.raises(DatabaseBuildError):
        open_database_bytes(b"definitely not sqlite" * 100)


def test_state_diff_reports_inserted_updated_and_deleted_rows() -> None:
    before = build_database(SCHEMA, SEED)
    after = build_database(SCHEMA, SEED)
    after.execute("UPDATE items SET qty = 4 WHERE item_id = 'i1'")
    after.execute("DELETE FROM items WHERE item_id = 'i2'")
    after.execute("INSERT INTO items VALUES ('i0', 'washer', 9)")
    after.execute("INSERT INTO pairs VALUES ('x', 2, 'b'), ('x', 1, 'a')")
    diff = state_diff(before, after)
    assert diff["items"] == {
        "inserted": [{"item_id": "i0", "name": "washer", "qty": 9}],
        "updated": [{"key": {"item_id": "i1"}, "before": {"qty": 5}, "after": {"qty": 4}}],
        "deleted": [{"item_id": "i2", "name": "nut", "qty": 0}],
    }
    # Composite keys order the rows deterministically.
    assert [r["b"] for r in diff["pairs"]["inserted"]] == [1, 2]
    assert "notes" not in diff  # unchanged tables are omitted
    assert state_diff(before, before) == {}


def test_state_diff_keys_tables_without_primary_key_by_rowid() -> None:
    before = build_database(SCHEMA, SEED)
    after = build_database(SCHEMA, SEED)
    after.execute("UPDATE notes SET body = 'edited'")
    assert state_diff(before, after)["notes"]["updated"] == [
        {"key": {"rowid": 1}, "before": {"body": "first"}, "after": {"body": "edited"}}
    ]


def test_state_hash_ignores_insertion_order_but_not_content() -> None:
    rows = {
        "items": SEED["items"],
        "notes": [{"body": "b"}, {"body": "a"}],
    }
    reordered = {
        "items": list(reversed(SEED["items"])),
        "notes": [{"body": "a"}, {"body": "b"}],
    }
    first = build_database(SCHEMA, rows)
    second = build_database(SCHEMA, reordered)
    assert state_hash(first) == state_hash(second)
    second.execute("UPDATE items SET qty = qty + 1 WHERE item_id = 'i1'")
    assert state_hash(first) != state_hash(second)


def test_state_hash_covers_the_schema() -> None:
    plain = build_database("CREATE TABLE t (a INTEGER);", {})
    other = build_database("CREATE TABLE t (a INTEGER, b TEXT);", {})
    assert state_hash(plain) != state_hash(other)


def test_state_hash_does_not_depend_on_page_layout() -> None:
    conn = build_database(SCHEMA, SEED)
    before = state_hash(conn)
    conn.executemany("INSERT INTO items VALUES (?, 'filler', 1)", [(f"z{i}",) for i in range(500)])
    conn.execute("DELETE FROM items WHERE item_id LIKE 'z%'")
    conn.commit()
    assert state_hash(conn) == before


def _write_env(folder: Path, **overrides: str) -> Path:
    files = {
        "environment.json": json.dumps(
            {
                "name": "tiny",
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "ping",
                            "description": "",
                            "parameters": {"type": "object"},
                        },
                    }
                ],
                "read_only_tools": ["ping"],
            }
        ),
        "schema.sql": "CREATE TABLE t (a INTEGER);",
        "seed.json": "{}",
        "tools.py": "def ping(db):\n    return 'pong'\n",
    }
    files.update(overrides)
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_load_environment_reads_a_minimal_directory(tmp_path: Path) -> None:
    env = load_environment(_write_env(tmp_path / "env"))
    assert env.name == "tiny" and env.manifest.source == "hand-written"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"seed.json": "[1, 2]"}, r"seed\.json: must hold a JSON object"),
        ({"environment.json": "{not json"}, r"environment\.json: not valid JSON"),
        ({"environment.json": json.dumps({"name": "x", "tools": [{"type": "nope"}]})}, "tools"),
        (
            {"environment.json": json.dumps({"name": "x", "tools": [], "read_only_tools": ["a"]})},
            "read_only_tools",
        ),
    ],
)
def test_load_environment_rejects_bad_parts(tmp_path: Path, overrides: dict, fragment: str) -> None:
    with pytest.raises(EnvironmentFormatError, match=fragment):
        load_environment(_write_env(tmp_path / "env", **overrides))


def test_load_environment_names_a_missing_file(tmp_path: Path) -> None:
    folder = _write_env(tmp_path / "env")
    (folder / "tools.py").unlink()
    with pytest.raises(EnvironmentFormatError, match=r"tools\.py: missing"):
        load_environment(folder)
    with pytest.raises(EnvironmentFormatError, match="not an environment directory"):
        load_environment(tmp_path / "nowhere")


def _manifest(**extra: object) -> dict:
    tool = {"type": "function", "function": {"name": "", "parameters": {"type": "object"}}}
    tools = [
        {**tool, "function": {**tool["function"], "name": name}} for name in ("look", "cancel")
    ]
    return {"name": "tiny", "tools": tools, "read_only_tools": ["look"], **extra}


def test_confirm_before_names_declared_write_tools() -> None:
    assert Manifest.model_validate(_manifest(confirm_before=["cancel"])).confirm_before == [
        "cancel"
    ]
    with pytest.raises(ValueError, match="undeclared tools"):
        Manifest.model_validate(_manifest(confirm_before=["refund"]))
    with pytest.raises(ValueError, match="read-only tools"):
        Manifest.model_validate(_manifest(confirm_before=["look"]))


def test_an_empty_confirm_before_keeps_the_manifest_and_its_hash_unchanged() -> None:
    plain = make_environment(_manifest(), "CREATE TABLE t (a INTEGER);", {}, "")
    empty = make_environment(_manifest(confirm_before=[]), "CREATE TABLE t (a INTEGER);", {}, "")
    marked = make_environment(
        _manifest(confirm_before=["cancel"]), "CREATE TABLE t (a INTEGER);", {}, ""
    )
    assert "confirm_before" not in plain.manifest.model_dump(mode="json")
    assert empty.content_hash() == plain.content_hash() != marked.content_hash()
    assert marked.manifest.model_dump(mode="json")["confirm_before"] == ["cancel"]
