"""Executable environments: the directory format, the database they build, and state diffs.

An environment is a manifest (`environment.json`), SQLite DDL (`schema.sql`), seed rows
(`seed.json`) and tool code (`tools.py`). This module loads and saves that directory,
builds a fresh in-memory database from schema + seed + a scenario's extra rows, and turns
two databases into a row-level diff or one database into a stable content hash.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MANIFEST_FILE = "environment.json"
SCHEMA_FILE = "schema.sql"
SEED_FILE = "seed.json"
TOOLS_FILE = "tools.py"

# Pragmas a schema may set while it is built; anything else could reach outside the database.
_SCHEMA_PRAGMAS = frozenset({"foreign_keys"})


class EnvironmentFormatError(ValueError):
    """An environment directory or its parts are missing or malformed."""


class DatabaseBuildError(ValueError):
    """The schema, the seed or the scenario rows could not be loaded into a database."""


class DocumentSource(BaseModel):
    """Where a synthesized environment came from."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str
    text_sha256: str | None = None


class Manifest(BaseModel):
    """The contents of `environment.json`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    source: str | DocumentSource = "hand-written"
    tools: list[dict[str, Any]]
    policy: str = ""
    read_only_tools: list[str] = Field(default_factory=list)

    @field_validator("tools")
    @classmethod
    def _tools_are_openai_functions(cls, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for index, tool in enumerate(tools):
            function = tool.get("function")
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise ValueError(f"tools[{index}] is not {{'type': 'function', 'function': ...}}")
            name = function.get("name")
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"tools[{index}] has no valid function name")
            if not isinstance(function.get("parameters", {}), dict):
                raise ValueError(f"tool {name!r}: parameters must be a JSON Schema object")
            if name in seen:
                raise ValueError(f"tool {name!r} is declared twice")
            seen.add(name)
        return tools

    @model_validator(mode="after")
    def _read_only_tools_exist(self) -> Manifest:
        unknown = sorted(set(self.read_only_tools) - set(self.tool_names))
        if unknown:
            raise ValueError(f"read_only_tools names undeclared tools: {unknown}")
        return self

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


@dataclass(frozen=True)
class Environment:
    """One executable environment: manifest, DDL, seed rows and tool source code."""

    manifest: Manifest
    schema_sql: str
    seed: dict[str, list[dict[str, Any]]]
    tools_py: str

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.manifest.tools

    @property
    def policy(self) -> str:
        return self.manifest.policy

    def content_hash(self) -> str:
        """sha256 over a canonical serialisation of all four parts (not of file bytes)."""
        payload = {
            "manifest": self.manifest.model_dump(mode="json"),
            "schema_sql": self.schema_sql,
            "seed": self.seed,
            "tools_py": self.tools_py,
        }
        return hashlib.sha256(_canonical_json(payload).encode("utf-8")).hexdigest()


def environment_ref(env: Environment) -> dict[str, str]:
    """The `environment` field of a record: name and content hash."""
    return {"name": env.name, "sha256": env.content_hash()}


def make_environment(
    manifest: Mapping[str, Any] | Manifest,
    schema_sql: str,
    seed: Mapping[str, Any],
    tools_py: str,
) -> Environment:
    """Validate the parts and assemble an `Environment`; raises `EnvironmentFormatError`."""
    try:
        checked = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(manifest)
    except ValidationError as exc:
        raise EnvironmentFormatError(f"invalid manifest: {_short_validation(exc)}") from None
    try:
        rows = _check_rows(seed, "seed")
    except DatabaseBuildError as exc:
        raise EnvironmentFormatError(str(exc)) from None
    return Environment(manifest=checked, schema_sql=schema_sql, seed=rows, tools_py=tools_py)


def load_environment(path: str | Path) -> Environment:
    """Read an environment directory; every missing or malformed part is a clear error."""
    folder = Path(path)
    if not folder.is_dir():
        raise EnvironmentFormatError(f"{folder}: not an environment directory")
    texts: dict[str, str] = {}
    for file_name in (MANIFEST_FILE, SCHEMA_FILE, SEED_FILE, TOOLS_FILE):
        file_path = folder / file_name
        try:
            texts[file_name] = file_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise EnvironmentFormatError(f"{file_path}: missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentFormatError(f"{file_path}: unreadable ({exc})") from None
    manifest = _parse_json_object(texts[MANIFEST_FILE], folder / MANIFEST_FILE)
    seed = _parse_json_object(texts[SEED_FILE], folder / SEED_FILE)
    try:
        return make_environment(manifest, texts[SCHEMA_FILE], seed, texts[TOOLS_FILE])
    except EnvironmentFormatError as exc:
        raise EnvironmentFormatError(f"{folder}: {exc}") from None


def save_environment(env: Environment, path: str | Path) -> Path:
    """Write the four files of `env` into `path` (created if needed) and return it."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = env.manifest.model_dump(mode="json")
    (folder / MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (folder / SCHEMA_FILE).write_text(env.schema_sql, encoding="utf-8")
    (folder / SEED_FILE).write_text(
        json.dumps(env.seed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (folder / TOOLS_FILE).write_text(env.tools_py, encoding="utf-8")
    return folder


# ---- databases ----------------------------------------------------------------------------


def build_database(
    schema_sql: str,
    seed: Mapping[str, Any],
    scenario_rows: Mapping[str, Any] | None = None,
) -> sqlite3.Connection:
    """A fresh in-memory database: the DDL, then the seed rows, then the scenario's rows.

    The DDL runs with attachments disabled and an authorizer, so a hostile schema cannot
    touch files. Raises `DatabaseBuildError` naming the failing part.
    """
    conn = sqlite3.connect(":memory:")
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.execute("PRAGMA trusted_schema = OFF")
    conn.set_authorizer(_schema_authorizer)
    try:
        conn.executescript(schema_sql)
        conn.set_authorizer(None)
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseBuildError(f"schema.sql failed: {exc}") from None
    try:
        _insert_rows(conn, _check_rows(seed, "seed"), "seed")
        if scenario_rows:
            _insert_rows(conn, _check_rows(scenario_rows, "scenario rows"), "scenario rows")
        conn.commit()
    except DatabaseBuildError:
        conn.close()
        raise
    return conn


def database_bytes(conn: sqlite3.Connection) -> bytes:
    """Serialise the main database of `conn` (what travels to and from the sandbox)."""
    return conn.serialize()


def open_database_bytes(data: bytes) -> sqlite3.Connection:
    """Open serialised database bytes in a fresh in-memory connection, checking integrity."""
    conn = sqlite3.connect(":memory:")
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    try:
        conn.deserialize(data)
        conn.execute("PRAGMA trusted_schema = OFF")
        verdict = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseBuildError(f"not a valid SQLite database: {exc}") from None
    if not verdict or verdict[0] != "ok":
        conn.close()
        raise DatabaseBuildError(f"database failed its integrity check: {verdict}")
    return conn


def _schema_authorizer(action: int, arg1: str | None, *_: object) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _SCHEMA_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _check_rows(rows: Any, what: str) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(rows, Mapping):
        raise DatabaseBuildError(f"{what} must be an object {{table: [row, ...]}}")
    for table, table_rows in rows.items():
        if not isinstance(table_rows, list) or not all(isinstance(r, dict) for r in table_rows):
            raise DatabaseBuildError(f"{what}: table {table!r} must map to a list of row objects")
    return {str(table): list(table_rows) for table, table_rows in rows.items()}


def _insert_rows(
    conn: sqlite3.Connection, rows: dict[str, list[dict[str, Any]]], what: str
) -> None:
    tables = set(_user_tables(conn))
    for table, table_rows in rows.items():
        if table not in tables:
            raise DatabaseBuildError(f"{what}: unknown table {table!r}")
        for index, row in enumerate(table_rows):
            columns = list(row)
            if not columns:
                sql = f"INSERT INTO {_quote(table)} DEFAULT VALUES"
            else:
                names = ", ".join(_quote(c) for c in columns)
                marks = ", ".join("?" for _ in columns)
                sql = f"INSERT INTO {_quote(table)} ({names}) VALUES ({marks})"
            try:
                conn.execute(sql, [_sql_value(row[c]) for c in columns])
            except sqlite3.Error as exc:
                raise DatabaseBuildError(f"{what}: {table}[{index}]: {exc}") from None


def _sql_value(value: Any) -> Any:
    # Nested JSON is stored as JSON text, the way tools read it back with json.loads.
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# ---- diffs and hashes ---------------------------------------------------------------------


@dataclass(frozen=True)
class _TableDump:
    columns: list[str]
    key_columns: list[str]
    rows: dict[tuple[Any, ...], dict[str, Any]]


def state_diff(before: sqlite3.Connection, after: sqlite3.Connection) -> dict[str, Any]:
    """Row-level changes per table, keyed by primary key (rowid when a table has none).

    `{table: {"inserted": [row], "updated": [{"key", "before", "after"}], "deleted": [row]}}`;
    `before`/`after` of an update hold only the changed columns. Unchanged tables are
    omitted; tables and rows come in a fixed order.
    """
    old_tables = {name: _dump_table(before, name) for name in _user_tables(before)}
    new_tables = {name: _dump_table(after, name) for name in _user_tables(after)}
    diff: dict[str, Any] = {}
    for name in sorted(set(old_tables) | set(new_tables)):
        old = old_tables.get(name)
        new = new_tables.get(name)
        old_rows = old.rows if old else {}
        new_rows = new.rows if new else {}
        reference = new or old
        key_columns = reference.key_columns if reference else []
        inserted = [new_rows[k] for k in _sorted_keys(set(new_rows) - set(old_rows))]
        deleted = [old_rows[k] for k in _sorted_keys(set(old_rows) - set(new_rows))]
        updated = []
        for key in _sorted_keys(set(old_rows) & set(new_rows)):
            was, now = old_rows[key], new_rows[key]
            changed = sorted(c for c in set(was) | set(now) if not _same(was.get(c), now.get(c)))
            if changed:
                updated.append(
                    {
                        "key": dict(zip(key_columns, key, strict=True)),
                        "before": {c: was.get(c) for c in changed},
                        "after": {c: now.get(c) for c in changed},
                    }
                )
        if inserted or updated or deleted:
            diff[name] = {"inserted": inserted, "updated": updated, "deleted": deleted}
    return diff


def state_hash(conn: sqlite3.Connection) -> str:
    """sha256 of the schema and every row, independent of page layout and insertion order.

    Rows sort by primary key; tables without a declared key sort by their full content,
    because their rowids only reflect insertion order.
    """
    schema = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    tables: dict[str, Any] = {}
    for name in _user_tables(conn):
        dump = _dump_table(conn, name)
        if dump.key_columns == ["rowid"]:
            ordered = sorted(dump.rows.values(), key=_canonical_json)
        else:
            ordered = [dump.rows[key] for key in _sorted_keys(set(dump.rows))]
        rows = [[row[c] for c in dump.columns] for row in ordered]
        tables[name] = {"columns": dump.columns, "rows": rows}
    payload = {"schema": [list(entry) for entry in schema], "tables": tables}
    return hashlib.sha256(_canonical_json(payload).encode("utf-8")).hexdigest()


def _user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


def _dump_table(conn: sqlite3.Connection, table: str) -> _TableDump:
    info = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    columns = [row[1] for row in info]
    declared = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
    key_columns = declared or ["rowid"]
    select = ", ".join(_quote(c) for c in columns)
    if declared:
        cursor = conn.execute(f"SELECT {select} FROM {_quote(table)}")
        records = [dict(zip(columns, values, strict=True)) for values in cursor]
        rows = {tuple(_json_value(r[c]) for c in declared): _json_row(r) for r in records}
    else:
        cursor = conn.execute(f"SELECT rowid, {select} FROM {_quote(table)}")
        rows = {
            (values[0],): _json_row(dict(zip(columns, values[1:], strict=True)))
            for values in cursor
        }
    return _TableDump(columns=columns, key_columns=key_columns, rows=rows)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {column: _json_value(value) for column, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": value.hex()}
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
    return (3, _canonical_json(value))


def _sorted_keys(keys: set[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(keys, key=lambda key: tuple(_sort_key(v) for v in key))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _parse_json_object(text: str, where: Path) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnvironmentFormatError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise EnvironmentFormatError(f"{where}: must hold a JSON object")
    return value


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "manifest"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
