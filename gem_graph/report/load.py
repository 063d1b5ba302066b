"""Everything the report reads from a run folder: the report's only I/O but writing the file.

Statistics cover the whole run, so they are read as light rows: SQLite's `json_extract`
pulls the few fields the overview needs (`stats`, the judge's rubrics, the mode) out of
each stored record without parsing the rest, which keeps a 10,000-record report to
seconds. Whole records, rejects, source texts and environments are read only for the
items the viewer embeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gem_graph.environment import EnvironmentFormatError, load_environment
from gem_graph.run.store import RunStore, StoreError


@dataclass(frozen=True)
class RecordRow:
    """What the overview and the sampler need of one kept record."""

    id: str
    doc_id: str
    environment: str | None
    """The environment's name; None when the run did not execute tools."""
    stats: dict[str, Any]
    rubrics: dict[str, Any]
    mode: str


@dataclass(frozen=True)
class RejectRow:
    """What the overview and the sampler need of one rejected or failed document."""

    doc_id: str
    status: str
    stage: str
    code: str
    reason: str
    failed_rubrics: tuple[str, ...]
    """The rubric labels a judge reject failed (its problems' `where`); empty otherwise."""


@dataclass(frozen=True)
class AttemptRow:
    """How many documents made `calls` model calls at `stage`, and how they ended there."""

    stage: str
    calls: int
    outcome: str
    """`passed` (went on), `stopped` (rejected here) or `failed` (transport, here)."""
    documents: int


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


class RunReader:
    """Read one run folder for the report; `StoreError` when it is not a run folder."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.store = RunStore(self.run_dir)
        self.db = self.store.db

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the whole run ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The store's own summary: the numbers `gem-graph stats` prints."""
        return self.store.summary()

    def meta(self) -> dict[str, Any]:
        """Every `meta` value of the run (settings, fingerprint, versions, options)."""
        return {row["key"]: _loads(row["value"], None) for row in self.db.table("meta").rows}

    def record_rows(self) -> Iterator[RecordRow]:
        """One light row per kept record, in the order they were written."""
        rows = self.db.query(
            "SELECT id, doc_id, json_extract(json, '$.environment.name') AS environment, "
            "json_extract(json, '$.stats') AS stats, "
            "json_extract(json, '$.judge.rubrics') AS rubrics, "
            "json_extract(json, '$.provenance.mode') AS mode FROM records ORDER BY rowid"
        )
        for row in rows:
            stats = _loads(row["stats"], {})
            rubrics = _loads(row["rubrics"], {})
            yield RecordRow(
                id=str(row["id"]),
                doc_id=str(row["doc_id"]),
                environment=row["environment"],
                stats=stats if isinstance(stats, dict) else {},
                rubrics=rubrics if isinstance(rubrics, dict) else {},
                mode=str(row["mode"] or "pipeline"),
            )

    def reject_rows(self) -> Iterator[RejectRow]:
        """One light row per rejected or failed document, in the order they finished."""
        rows = self.db.query(
            "SELECT r.doc_id, d.status, r.stage, r.code, r.reason, CASE WHEN r.stage = 'judge' "
            "THEN (SELECT json_group_array(json_extract(p.value, '$.where')) "
            "FROM json_each(r.json, '$.problems') p) END AS failed "
            "FROM rejects r JOIN documents d ON d.id = r.doc_id "
            "WHERE d.status IN ('rejected', 'failed') ORDER BY r.rowid"
        )
        for row in rows:
            failed = _loads(row["failed"], [])
            yield RejectRow(
                doc_id=str(row["doc_id"]),
                status=str(row["status"]),
                stage=str(row["stage"] or ""),
                code=str(row["code"] or ""),
                reason=str(row["reason"] or ""),
                failed_rubrics=tuple(str(w) for w in failed if isinstance(w, str) and w),
            )

    def attempt_rows(self) -> list[AttemptRow]:
        """Documents per stage, number of calls and outcome at that stage."""
        rows = self.db.query(
            "SELECT u.stage, u.calls, CASE WHEN d.status = 'kept' OR d.stage != u.stage "
            "THEN 'passed' WHEN d.status = 'failed' THEN 'failed' ELSE 'stopped' END AS outcome, "
            "COUNT(*) AS n FROM usage u JOIN documents d ON d.id = u.doc_id "
            "WHERE d.status IN ('kept', 'rejected', 'failed') GROUP BY 1, 2, 3"
        )
        return [
            AttemptRow(str(r["stage"]), int(r["calls"] or 0), str(r["outcome"]), int(r["n"]))
            for r in rows
        ]

    # ---- the embedded items -----------------------------------------------------------------

    def records(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The whole records with these ids."""
        return {
            str(row["id"]): json.loads(row["json"])
            for row in self._rows_in("records", "id", "id, json", list(ids))
        }

    def rejects(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The whole rejects of these documents."""
        return {
            str(row["doc_id"]): json.loads(row["json"])
            for row in self._rows_in("rejects", "doc_id", "doc_id, json", list(doc_ids))
        }

    def texts(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """The source text of each of these documents (segments: the segment's text)."""
        return {
            str(row["id"]): str(row["text"] or "")
            for row in self._rows_in("documents", "id", "id, text", list(doc_ids))
        }

    def environments(self, shas: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Tools, policy and schema of each saved environment, keyed by content hash.

        An environment folder is read only inside the run folder, through the environment
        loader's checks (regular files, size caps, strict JSON); one that cannot be read
        becomes `{"name", "error"}` so the report still renders.
        """
        rows = self._rows_in("environments", "sha256", "sha256, name, path", sorted(set(shas)))
        return {
            str(row["sha256"]): self._environment(str(row["name"]), str(row["path"] or ""))
            for row in rows
        }

    def _environment(self, name: str, path: str) -> dict[str, Any]:
        root = self.run_dir.resolve()
        folder = (root / path).resolve()
        if not path or not folder.is_relative_to(root):
            return {"name": name, "error": "the environment folder is outside the run folder"}
        try:
            env = load_environment(folder)
        except EnvironmentFormatError as exc:
            return {"name": name, "error": str(exc)}
        manifest = env.manifest
        return {
            "name": name,
            "description": manifest.description,
            "policy": env.policy,
            "tools": env.tools,
            "read_only_tools": list(manifest.read_only_tools),
            "confirm_before": list(manifest.confirm_before),
            "schema_sql": env.schema_sql,
        }

    def _rows_in(
        self, table: str, key: str, select: str, values: list[str], chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Rows of `table` whose `key` is one of `values`, asked for in chunks."""
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            marks = ", ".join("?" for _ in part)
            yield from self.db.query(f"SELECT {select} FROM {table} WHERE {key} IN ({marks})", part)


__all__ = ["AttemptRow", "RecordRow", "RejectRow", "RunReader", "StoreError"]
