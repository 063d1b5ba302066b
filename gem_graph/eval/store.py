"""The resumable result store of an eval run: `EVAL_DIR/eval.sqlite`.

One row per (task, trial), committed as soon as the episode ends. Re-running the same
command skips episodes that scored or found a bad task; infrastructure failures are
retried. The run's configuration (agent, user, models, seeds, prompt versions, caps) is
kept once and copied into every result, and a resume with another configuration is
refused: results of two setups must not mix.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

STORE_FILE = "eval.sqlite"
Status = Literal["scored", "bad_task", "failed"]
"""`scored`: reward 0 or 1; `bad_task`: the task cannot be played; `failed`: the machine
or the model endpoint failed, no reward (retried on resume)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    task_id TEXT NOT NULL,
    trial INTEGER NOT NULL,
    environment TEXT,
    status TEXT NOT NULL,
    reward REAL,
    reason TEXT,
    result TEXT NOT NULL,
    PRIMARY KEY (task_id, trial)
);
"""


class ConfigMismatch(Exception):
    """The folder holds results of a different configuration."""


class EvalStore:
    """Results of one eval run folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.folder / STORE_FILE)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def bind_config(self, config: dict[str, Any]) -> None:
        """Record the configuration, or check it equals the one already recorded."""
        text = json.dumps(config, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        if row is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('config', ?)", (text,))
        elif row[0] != text:
            old = json.loads(row[0])
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ConfigMismatch(
                f"{self.folder} holds results of another configuration "
                f"(different {', '.join(changed)}); use a new output folder"
            )

    def done(self) -> set[tuple[str, int]]:
        """Episodes that need no rerun: scored, or a bad task."""
        rows = self.db.execute("SELECT task_id, trial FROM episodes WHERE status != 'failed'")
        return {(task_id, trial) for task_id, trial in rows}

    def put(self, result: dict[str, Any]) -> None:
        """Write one episode's result (replacing an earlier failed attempt)."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    result["task_id"],
                    result["trial"],
                    result.get("environment"),
                    result["status"],
                    result.get("reward"),
                    result.get("reason"),
                    json.dumps(result, ensure_ascii=False, default=str),
                ),
            )

    def results(self) -> list[dict[str, Any]]:
        """Every stored result, by task and trial."""
        rows = self.db.execute("SELECT result FROM episodes ORDER BY task_id, trial")
        return [json.loads(text) for (text,) in rows]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> EvalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
