"""Executable environments: the directory format, the database they build, and state diffs.

An environment is a manifest (`environment.json`), SQLite DDL (`schema.sql`), seed rows
(`seed.json`) and tool code (`tools.py`). This module loads and saves that directory,
builds a fresh in-memory database from schema + seed + a scenario's extra rows, and turns
two databases into a row-level diff or one database into a stable content hash.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from gem_graph import strictjson
from gem_graph.contracts.record import EnvironmentRef
from gem_graph.dbstate import (
    DatabaseBuildError,
    build_database,
    canonical_json,
    check_rows,
    open_bytes,
    state_diff,
    state_hash,
)

__all__ = [
    "DatabaseBuildError",
    "Environment",
    "EnvironmentFormatError",
    "Manifest",
    "build_database",
    "database_bytes",
    "environment_ref",
    "load_environment",
    "make_environment",
    "open_database_bytes",
    "save_environment",
    "state_diff",
    "state_hash",
]

MANIFEST_FILE = "environment.json"
SCHEMA_FILE = "schema.sql"
SEED_FILE = "seed.json"
TOOLS_FILE = "tools.py"
MAX_FILE_BYTES = 8 * 2**20
"""Largest accepted file of an environment directory (each of the four)."""


class EnvironmentFormatError(ValueError):
    """An environment directory or its parts are missing or malformed."""


class DocumentSource(BaseModel):
    """Where a synthesized environment came from."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str
    text_sha256: str | None = None


class Manifest(BaseModel):
    """The contents of `environment.json`.

    `confirm_before` names the write tools the source says need the user's agreement
    first; the dialogue checks hold every call of them to that. It is left out of the
    serialised manifest when empty, so manifests without it keep their content hash.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    source: str | DocumentSource = "hand-written"
    tools: list[dict[str, Any]]
    policy: str = ""
    read_only_tools: list[str] = Field(default_factory=list)
    confirm_before: list[str] = Field(default_factory=list)

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
        unknown = sorted(set(self.confirm_before) - set(self.tool_names))
        if unknown:
            raise ValueError(f"confirm_before names undeclared tools: {unknown}")
        reads = sorted(set(self.confirm_before) & set(self.read_only_tools))
        if reads:
            raise ValueError(f"confirm_before names read-only tools, which change nothing: {reads}")
        return self

    @model_serializer(mode="wrap")
    def _omit_empty_confirm_before(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("confirm_before"):
            data.pop("confirm_before", None)
        return data

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

    @functools.cached_property
    def database_key(self) -> str:
        """sha256 of the schema and seed: episodes with equal keys share one built template."""
        payload = {"schema_sql": self.schema_sql, "seed": self.seed}
        return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

    def content_hash(self) -> str:
        """sha256 over a canonical serialisation of all four parts (not of file bytes)."""
        payload = {
            "manifest": self.manifest.model_dump(mode="json"),
            "schema_sql": self.schema_sql,
            "seed": self.seed,
            "tools_py": self.tools_py,
        }
        return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def environment_ref(env: Environment) -> EnvironmentRef:
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
        rows = check_rows(seed, "seed")
    except DatabaseBuildError as exc:
        raise EnvironmentFormatError(str(exc)) from None
    return Environment(manifest=checked, schema_sql=schema_sql, seed=rows, tools_py=tools_py)


def load_environment(path: str | Path) -> Environment:
    """Read an environment directory; every missing or malformed part is a clear error.

    The folder may be reached through a symlink, but each of the four files must be a
    regular file of at most `MAX_FILE_BYTES` directly inside it: a symlink, FIFO or device
    is refused before anything is read, so a hostile folder cannot make the client read a
    host file, block on a pipe or exhaust memory. The JSON files are parsed strictly
    (`gem_graph.strictjson`: no duplicate keys, NaN or lone surrogates).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise EnvironmentFormatError(f"{folder}: not an environment directory")
    data = {
        name: _read_environment_file(folder / name)
        for name in (MANIFEST_FILE, SCHEMA_FILE, SEED_FILE, TOOLS_FILE)
    }
    manifest = _parse_json_object(data[MANIFEST_FILE], folder / MANIFEST_FILE)
    seed = _parse_json_object(data[SEED_FILE], folder / SEED_FILE)
    schema_sql = _decode_text(data[SCHEMA_FILE], folder / SCHEMA_FILE)
    tools_py = _decode_text(data[TOOLS_FILE], folder / TOOLS_FILE)
    try:
        return make_environment(manifest, schema_sql, seed, tools_py)
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
# Building, hashing and diffing live in `dbstate` (stdlib only, shared with the sandbox's
# monitor). These names stay here for trusted callers: tests and hand-written environments.


def database_bytes(conn: sqlite3.Connection) -> bytes:
    """Serialise the main database of `conn`."""
    return conn.serialize()


def open_database_bytes(data: bytes, max_bytes: int = 256 * 2**20) -> sqlite3.Connection:
    """Open serialised database bytes in a fresh in-memory connection, checking integrity."""
    return open_bytes(data, max_bytes=max_bytes)


def _read_environment_file(path: Path) -> bytes:
    """The bytes of a regular file that is not a symlink, or `EnvironmentFormatError`.

    `lstat` refuses special files before they are opened (a FIFO would block, a device
    could stream forever); `O_NOFOLLOW` and the `fstat` identity check close the race where
    the entry is swapped between the two. Messages never quote what a link points at.
    """
    try:
        entry = os.lstat(path)
    except FileNotFoundError:
        raise EnvironmentFormatError(f"{path}: missing") from None
    except OSError as exc:
        raise EnvironmentFormatError(f"{path}: unreadable ({exc.strerror})") from None
    _check_regular(entry, path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EnvironmentFormatError(f"{path}: {_NOT_REGULAR}") from None
        raise EnvironmentFormatError(f"{path}: unreadable ({exc.strerror})") from None
    try:
        opened = os.fstat(fd)
        _check_regular(opened, path)
        if (opened.st_dev, opened.st_ino) != (entry.st_dev, entry.st_ino):
            raise EnvironmentFormatError(f"{path}: changed while it was being opened")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise EnvironmentFormatError(f"{path}: unreadable ({exc.strerror})") from None
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise EnvironmentFormatError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return b"".join(chunks)


_NOT_REGULAR = "must be a regular file inside the environment folder, not a symlink or special file"


def _check_regular(info: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise EnvironmentFormatError(f"{path}: {_NOT_REGULAR}")
    if info.st_size > MAX_FILE_BYTES:
        raise EnvironmentFormatError(f"{path}: larger than {MAX_FILE_BYTES} bytes")


def _decode_text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvironmentFormatError(f"{path}: not valid UTF-8 (at byte {exc.start})") from None


def _parse_json_object(data: bytes, where: Path) -> dict[str, Any]:
    try:
        value = strictjson.loads(data, max_bytes=MAX_FILE_BYTES)
    except strictjson.StrictJSONError as exc:
        raise EnvironmentFormatError(f"{where}: {exc}") from None
    if not isinstance(value, dict):
        raise EnvironmentFormatError(f"{where}: must hold a JSON object")
    return value


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "manifest"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
