"""Episode databases: build them, hash them, diff them, and track their changes.

Stdlib only, because the sandbox monitor loads this package by path (it runs `python -S`
without gem_graph). Every function here may meet untrusted SQL or rows.

- `build`: a database from schema + seed + scenario rows, under limits.
- `rows`: table shapes, dumps and the row diff.
- `digest`: the state hash (format `STATE_HASH_VERSION`).
- `tracking`: a database whose state and diff cost O(rows changed).
"""

from .build import (
    LIMITS,
    SCHEMA_PRAGMAS,
    DatabaseBuildError,
    build_database,
    check_rows,
    harden,
    insert_rows,
    open_bytes,
    quote,
    schema_authorizer,
    set_deadline,
    user_tables,
)
from .digest import STATE_HASH_VERSION, state_hash
from .rows import canonical_json, dump_all, dump_table, state_diff, table_shape
from .tracking import NOTE_FUNCTION, TRIGGER_PREFIX, TrackedDatabase

__all__ = [
    "LIMITS",
    "NOTE_FUNCTION",
    "SCHEMA_PRAGMAS",
    "STATE_HASH_VERSION",
    "TRIGGER_PREFIX",
    "DatabaseBuildError",
    "TrackedDatabase",
    "build_database",
    "canonical_json",
    "check_rows",
    "dump_all",
    "dump_table",
    "harden",
    "insert_rows",
    "open_bytes",
    "quote",
    "schema_authorizer",
    "set_deadline",
    "state_diff",
    "state_hash",
    "table_shape",
    "user_tables",
]
