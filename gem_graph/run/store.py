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
server was unreachable) are not finished: a re-run processes them again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gem_graph.imports import import_without
from gem_graph.pipeline import LLM_STAGES, active_stages

sqlite_utils = import_without("sqlite_utils", ("pandas", "numpy"))

STORE_FILE = "run.sqlite"
FINISHED = ("kept", "rejected")
STAGE_ORDER = ("input", "intake", *LLM_STAGES, "emit")
"""The order usage rows are shown in."""


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
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store in {self.run_dir}: {exc}") from None
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.db = sqlite_utils.Database(self.conn)
        try:
            self.conn.execute("PRAGMA journal_mode = WAL")
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

    # ---- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self._transaction():
            for key, value in values.items():
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, _dumps(value))
                )

    # ---- sessions ---------------------------------------------------------------------------

    def start_session(self, settings_fingerprint: str) -> int:
        with self._transaction():
            cursor = self.conn.execute(
                "INSERT INTO sessions (started_at, processed, settings_fingerprint) "
                "VALUES (?, 0, ?)",
                (time.time(), settings_fingerprint),
            )
        return int(cursor.lastrowid or 0)

    def finish_session(self, session: int, *, processed: int, stopped_reason: str | None) -> None:
        with self._transaction():
            self.conn.execute(
                "UPDATE sessions SET finished_at = ?, processed = ?, stopped_reason = ? "
                "WHERE id = ?",
                (time.time(), processed, stopped_reason, session),
            )

    # ---- writes -----------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def finished_ids(self) -> set[str]:
        """Ids of documents that need no more work (kept or rejected)."""
        rows = self.conn.execute(
            "SELECT id FROM documents WHERE status IN (?, ?)", FINISHED
        ).fetchall()
        return {row[0] for row in rows}

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
        conn = self.conn
        with self._transaction():
            previous = conn.execute("SELECT runs FROM documents WHERE id = ?", (doc_id,)).fetchone()
            for table in ("records", "rejects", "usage"):
                conn.execute(f"DELETE FROM {table} WHERE doc_id = ?", (doc_id,))
            conn.execute(
                "INSERT OR REPLACE INTO documents (id, parent_id, status, stage, code, reason, "
                "records, chars, text_sha256, text, seconds, started_at, finished_at, runs, "
                "settings_fingerprint, isolation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?)",
                (
                    doc_id,
                    str(meta.get("parent_id") or doc_id),
                    status,
                    stage,
                    reject.get("code") if reject else None,
                    reject.get("reason") if reject else None,
                    len(records),
                    len(text),
                    document.get("text_sha256"),
                    text,
                    round(finished_at - started_at, 4),
                    started_at,
                    finished_at,
                    (previous[0] if previous else 0) + 1,
                    settings_fingerprint,
                    isolation,
                ),
            )
            for record in records:
                env = record.get("environment") or {}
                conn.execute(
                    "INSERT OR REPLACE INTO records (id, doc_id, environment, json) "
                    "VALUES (?, ?, ?, ?)",
                    (str(record["id"]), doc_id, env.get("sha256"), _dumps(record)),
                )
            if reject is not None:
                conn.execute(
                    "INSERT INTO rejects (doc_id, stage, code, reason, json) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        doc_id,
                        reject.get("stage"),
                        reject.get("code"),
                        reject.get("reason"),
                        _dumps(reject),
                    ),
                )
            for stage_name, row in usage.items():
                if stage_name == "total":
                    continue
                conn.execute(
                    "INSERT INTO usage (doc_id, stage, calls, input_tokens, output_tokens, "
                    "seconds) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        doc_id,
                        stage_name,
                        int(row.get("calls", 0)),
                        int(row.get("input_tokens", 0)),
                        int(row.get("output_tokens", 0)),
                        float(row.get("seconds", 0.0)),
                    ),
                )
            for sha, (name, path) in (environments or {}).items():
                conn.execute(
                    "INSERT OR IGNORE INTO environments (sha256, name, path, doc_id) "
                    "VALUES (?, ?, ?, ?)",
                    (sha, name, path, doc_id),
                )

    def environment_path(self, sha256: str) -> str | None:
        row = self.conn.execute(
            "SELECT path FROM environments WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return str(row[0]) if row else None

    # ---- reads ------------------------------------------------------------------------------

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every kept record, in the order documents finished."""
        cursor = self.conn.execute("SELECT json FROM records ORDER BY rowid")
        for (text,) in cursor:
            yield json.loads(text)

    def iter_rejects(self, *, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        """The reject of every rejected document (and of failed ones if asked)."""
        statuses = ("rejected", "failed") if include_failed else ("rejected", "rejected")
        cursor = self.conn.execute(
            "SELECT r.json FROM rejects r JOIN documents d ON d.id = r.doc_id "
            "WHERE d.status IN (?, ?) ORDER BY r.rowid",
            statuses,
        )
        for (text,) in cursor:
            yield json.loads(text)

    def document(self, doc_id: str) -> dict[str, Any] | None:
        rows = list(self.db["documents"].rows_where("id = ?", [doc_id]))
        return rows[0] if rows else None

    def iter_documents(self) -> Iterator[dict[str, Any]]:
        yield from self.db["documents"].rows_where(order_by="rowid")

    def summary(self) -> dict[str, Any]:
        """Everything the end-of-run table shows, computed from the store alone."""
        conn = self.conn
        counts = Counter(
            dict(conn.execute("SELECT status, COUNT(*) FROM documents GROUP BY status").fetchall())
        )
        ends = conn.execute(
            "SELECT status, stage, COUNT(*) FROM documents GROUP BY status, stage"
        ).fetchall()
        settings = self.get_meta("settings") or {}
        pipeline = settings.get("pipeline") or {}
        stages = _pipeline_stages(pipeline)
        funnel = _funnel(stages, [(s, st, int(n)) for s, st, n in ends])
        top = [
            {"stage": stage, "code": code, "count": int(n), "example": _first_line(example)}
            for stage, code, n, example in conn.execute(
                "SELECT r.stage, r.code, COUNT(*) AS n, MIN(r.reason) FROM rejects r "
                "JOIN documents d ON d.id = r.doc_id GROUP BY r.stage, r.code "
                "ORDER BY n DESC, r.stage LIMIT 8"
            ).fetchall()
        ]
        usage: dict[str, dict[str, float]] = {}
        for stage, calls, tin, tout, secs in conn.execute(
            "SELECT stage, SUM(calls), SUM(input_tokens), SUM(output_tokens), SUM(seconds) "
            "FROM usage GROUP BY stage"
        ).fetchall():
            usage[stage] = {
                "calls": int(calls or 0),
                "input_tokens": int(tin or 0),
                "output_tokens": int(tout or 0),
                "seconds": round(float(secs or 0.0), 3),
            }
        order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
        usage = dict(sorted(usage.items(), key=lambda item: order.get(item[0], len(order))))
        total = {
            key: sum(row[key] for row in usage.values())
            for key in ("calls", "input_tokens", "output_tokens", "seconds")
        }
        records = int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        per_kept = {
            key: (round(total[key] / records, 1) if records else None)
            for key in ("calls", "input_tokens", "output_tokens")
        }
        wall = conn.execute(
            "SELECT COALESCE(SUM(COALESCE(finished_at, started_at) - started_at), 0), COUNT(*) "
            "FROM sessions"
        ).fetchone()
        isolations = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT isolation FROM documents WHERE isolation IS NOT NULL"
            ).fetchall()
        ]
        sandbox = settings.get("sandbox") or {}
        if not pipeline.get("execute", True):
            isolation = "not executed (execution off)"
        elif isolations:
            isolation = ", ".join(sorted(isolations))
        else:
            isolation = f"tier {sandbox.get('tier', 'standard')} (from settings)"
        last_stop = conn.execute(
            "SELECT stopped_reason FROM sessions ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return {
            "run_dir": str(self.run_dir),
            "documents": {
                "total": sum(counts.values()),
                "kept": counts.get("kept", 0),
                "rejected": counts.get("rejected", 0),
                "failed": counts.get("failed", 0),
            },
            "records": records,
            "environments": int(conn.execute("SELECT COUNT(*) FROM environments").fetchone()[0]),
            "stages": funnel,
            "top_rejects": top,
            "usage": {**usage, "total": total},
            "per_kept": per_kept,
            "wall_seconds": round(float(wall[0]), 2),
            "sessions": int(wall[1]),
            "isolation": isolation,
            "model": (settings.get("model") or {}).get("name"),
            "stopped_reason": last_stop[0] if last_stop else None,
            "versions": self.get_meta("versions"),
        }

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _pipeline_stages(pipeline: Mapping[str, Any]) -> list[str]:
    """The stages a document passes through with these pipeline switches, in order."""
    return ["input", *active_stages(pipeline)]


def _funnel(stages: list[str], ends: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Per stage: documents that reached it and documents that passed it.

    A kept document passed every stage; a rejected or failed one reached every stage up to
    the one it stopped at, and passed all before it. `intake` counts as `input`.
    """
    index = {stage: i for i, stage in enumerate(stages)}
    reached = [0] * len(stages)
    passed = [0] * len(stages)
    for status, stage, count in ends:
        if status == "kept":
            stop = len(stages)
        else:
            stop = index.get("input" if stage == "intake" else stage, len(stages) - 1)
        for i in range(len(stages)):
            if i <= min(stop, len(stages) - 1):
                reached[i] += count
            if i < stop:
                passed[i] += count
    return [
        {"stage": s, "reached": r, "passed": p}
        for s, r, p in zip(stages, reached, passed, strict=True)
    ]


def _first_line(text: str | None, limit: int = 90) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
