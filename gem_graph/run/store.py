"""The run store: one SQLite database per run folder (`RUN_DIR/run.sqlite`, WAL mode).

Tables:
- `documents`: one row per document segment: status (`kept`, `rejected`, `failed`), the
  stage reached, reject code and reason, record count, timings, the settings fingerprint;
- `records`: kept trajectories (JSON), keyed by record id;
- `rejects`: the reject of each rejected or failed document (JSON);
- `usage`: per document and stage: calls, input and output tokens, seconds;
- `environments`: synthesized environments saved under `RUN_DIR/environments/`;
- `meta`: the settings, output fingerprint and versions of the run;
- `sessions`: one row per invocation (start, end, counts) for wall time.

Every document's results are written in ONE transaction that first deletes whatever an
earlier attempt left for that id, so a kill at any point leaves each document either
absent (re-run processes it) or complete, never duplicated. `failed` documents (the model
server was unreachable) are not finished: a re-run processes them again. The end-of-run
summary is computed in `summary.py`.

Reads and writes go through sqlite-utils. Where raw SQL is used and why:
- `BEGIN IMMEDIATE` / `COMMIT` (`_Transaction`): worker processes write to the same store.
  Taking the write lock up front lets the busy timeout wait for it, where the deferred
  `BEGIN` of sqlite-utils' `db.atomic()` can fail at once with SQLITE_BUSY when it turns
  from reading (sqlite-utils reads the schema before writing) to writing. sqlite-utils'
  writes inside it nest as savepoints, so the transaction stays one.
- `PRAGMA synchronous` and `PRAGMA integrity_check`: sqlite-utils has no call for them.
- The summary's aggregates (`summary.py`): no `Table` method groups or sums.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gem_graph.imports import import_without
from gem_graph.run.summary import STAGE_ORDER as STAGE_ORDER  # kept importable from here
from gem_graph.run.summary import summarize

sqlite_utils = import_without("sqlite_utils", ("pandas", "numpy"))

STORE_FILE = "run.sqlite"
FINISHED = ("kept", "rejected")


class StoreError(Exception):
    """The run folder or its store cannot be used."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class RunStore:
    """Read and write one run folder's SQLite store."""

    def __init__(self, run_dir: str | Path, *, create: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        if not self.path.exists() and not create:
            raise StoreError(f"{self.run_dir} holds no run store ({STORE_FILE} is missing)")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # autocommit (transactions are explicit); `timeout` is SQLite's busy timeout
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store in {self.run_dir}: {exc}") from None
        self.db = sqlite_utils.Database(self.conn)
        try:
            self.db.enable_wal()
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._create_tables()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable run store: {exc}") from None

    # ---- schema -----------------------------------------------------------------------------

    def _create_tables(self) -> None:
        db = self.db
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("documents").create(
            {
                "id": str,
                "parent_id": str,
                "status": str,
                "stage": str,
                "code": str,
                "reason": str,
                "records": int,
                "chars": int,
                "text_sha256": str,
                "text": str,
                "seconds": float,
                "started_at": float,
                "finished_at": float,
                "runs": int,
                "settings_fingerprint": str,
                "isolation": str,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table("records").create(
            {"id": str, "doc_id": str, "environment": str, "json": str},
            pk="id",
            if_not_exists=True,
        )
        db.table("rejects").create(
            {"doc_id": str, "stage": str, "code": str, "reason": str, "json": str},
            pk="doc_id",
            if_not_exists=True,
        )
        db.table("usage").create(
            {
                "doc_id": str,
                "stage": str,
                "calls": int,
                "input_tokens": int,
                "output_tokens": int,
                "seconds": float,
            },
            pk=("doc_id", "stage"),
            if_not_exists=True,
        )
        db.table("environments").create(
            {"sha256": str, "name": str, "path": str, "doc_id": str},
            pk="sha256",
            if_not_exists=True,
        )
        db.table("sessions").create(
            {
                "id": int,
                "started_at": float,
                "finished_at": float,
                "processed": int,
                "stopped_reason": str,
                "settings_fingerprint": str,
            },
            pk="id",
            if_not_exists=True,
        )
        db.table("records").create_index(["doc_id"], if_not_exists=True)
        db.table("documents").create_index(["status"], if_not_exists=True)

    def _row(self, table: str, key: str) -> dict[str, Any] | None:
        """The row of `table` whose primary key is `key`, or None."""
        try:
            return self.db.table(table).get(key)
        except sqlite_utils.db.NotFoundError:
            return None

    # ---- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._row("meta", key)
        return json.loads(row["value"]) if row else None

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self._transaction():
            self.db.table("meta").insert_all(
                ({"key": key, "value": _dumps(value)} for key, value in values.items()),
                replace=True,
            )

    # ---- sessions ---------------------------------------------------------------------------

    def start_session(self, settings_fingerprint: str) -> int:
        with self._transaction():
            sessions = self.db.table("sessions").insert(
                {
                    "started_at": time.time(),
                    "processed": 0,
                    "settings_fingerprint": settings_fingerprint,
                }
            )
        return int(sessions.last_rowid or 0)

    def finish_session(self, session: int, *, processed: int, stopped_reason: str | None) -> None:
        with self._transaction():
            self.db.table("sessions").update(
                session,
                {
                    "finished_at": time.time(),
                    "processed": processed,
                    "stopped_reason": stopped_reason,
                },
            )

    # ---- writes -----------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def finished_ids(self) -> set[str]:
        """Ids of documents that need no more work (kept or rejected)."""
        rows = self.db.table("documents").rows_where("status IN (?, ?)", FINISHED, select="id")
        return {row["id"] for row in rows}

    def seconds_per_document(self) -> float | None:
        """Wall seconds per processed document over earlier sessions (None before any):
        a resumed run's first estimate of time left, before it has finished one itself."""
        row = next(
            self.db.query(
                "SELECT (SELECT COUNT(*) FROM documents WHERE stage != 'input') AS n, "
                "(SELECT COALESCE(SUM(finished_at - started_at), 0) FROM sessions "
                "WHERE finished_at IS NOT NULL) AS seconds"
            )
        )
        return float(row["seconds"]) / row["n"] if row["n"] and row["seconds"] else None

    def save_document(
        self,
        document: Mapping[str, Any],
        *,
        status: str,
        stage: str,
        records: list[dict[str, Any]],
        reject: Mapping[str, Any] | None,
        usage: Mapping[str, Mapping[str, Any]],
        started_at: float,
        finished_at: float,
        settings_fingerprint: str,
        environments: Mapping[str, tuple[str, str]] | None = None,
        isolation: str | None = None,
    ) -> None:
        """Write one document's whole outcome atomically, replacing any earlier attempt.

        `environments` maps content hash → (name, saved path) for environments written to disk.
        """
        doc_id = str(document["id"])
        meta = document.get("meta") or {}
        text = document.get("text") or ""
        db = self.db
        with self._transaction():
            previous = self._row("documents", doc_id)
            for table in ("records", "rejects", "usage"):
                db.table(table).delete_where("doc_id = ?", [doc_id])
            db.table("documents").insert(
                {
                    "id": doc_id,
                    "parent_id": str(meta.get("parent_id") or doc_id),
                    "status": status,
                    "stage": stage,
                    "code": reject.get("code") if reject else None,
                    "reason": reject.get("reason") if reject else None,
                    "records": len(records),
                    "chars": len(text),
                    "text_sha256": document.get("text_sha256"),
                    "text": text,
                    "seconds": round(finished_at - started_at, 4),
                    "started_at": started_at,
                    "finished_at": finished_at,
                    "runs": (previous["runs"] if previous else 0) + 1,
                    "settings_fingerprint": settings_fingerprint,
                    "isolation": isolation,
                },
                replace=True,
            )
            db.table("records").insert_all(
                (
                    {
                        "id": str(record["id"]),
                        "doc_id": doc_id,
                        "environment": (record.get("environment") or {}).get("sha256"),
                        "json": _dumps(record),
                    }
                    for record in records
                ),
                replace=True,
            )
            if reject is not None:
                db.table("rejects").insert(
                    {
                        "doc_id": doc_id,
                        "stage": reject.get("stage"),
                        "code": reject.get("code"),
                        "reason": reject.get("reason"),
                        "json": _dumps(reject),
                    }
                )
            db.table("usage").insert_all(
                {
                    "doc_id": doc_id,
                    "stage": stage_name,
                    "calls": int(row.get("calls", 0)),
                    "input_tokens": int(row.get("input_tokens", 0)),
                    "output_tokens": int(row.get("output_tokens", 0)),
                    "seconds": float(row.get("seconds", 0.0)),
                }
                for stage_name, row in usage.items()
                if stage_name != "total"
            )
            db.table("environments").insert_all(
                (
                    {"sha256": sha, "name": name, "path": path, "doc_id": doc_id}
                    for sha, (name, path) in (environments or {}).items()
                ),
                ignore=True,
            )

    def environment_path(self, sha256: str) -> str | None:
        row = self._row("environments", sha256)
        return str(row["path"]) if row else None

    # ---- reads ------------------------------------------------------------------------------

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every kept record, in the order documents finished."""
        for row in self.db.table("records").rows_where(select="json", order_by="rowid"):
            yield json.loads(row["json"])

    def iter_rejects(self, *, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        """The reject of every rejected document (and of failed ones if asked)."""
        statuses = ("rejected", "failed") if include_failed else ("rejected", "rejected")
        rows = self.db.table("rejects").rows_where(
            "doc_id IN (SELECT id FROM documents WHERE status IN (?, ?))",
            statuses,
            select="json",
            order_by="rowid",
        )
        for row in rows:
            yield json.loads(row["json"])

    def document(self, doc_id: str) -> dict[str, Any] | None:
        return self._row("documents", doc_id)

    def iter_documents(self) -> Iterator[dict[str, Any]]:
        yield from self.db.table("documents").rows_where(order_by="rowid")

    def summary(self) -> dict[str, Any]:
        """Everything the end-of-run table shows, computed from the store alone."""
        return summarize(
            self.db,
            run_dir=str(self.run_dir),
            settings=self.get_meta("settings") or {},
            versions=self.get_meta("versions"),
            server=self.get_meta("model_profile"),
        )

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception (see the module doc)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
