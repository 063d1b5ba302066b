"""The resumable result store of an eval run: `EVAL_DIR/eval.sqlite`.

One row per (task, trial), committed as soon as the episode ends. Re-running the same
command skips episodes that scored or found a bad task; infrastructure failures are
retried. The run's configuration (agent, user, models, seeds, prompt versions, caps) is
kept once and copied into every result, and a resume with another configuration is
refused: results of two setups must not mix. Where the environments were looked up is
recorded but may change (`--environments` fixing an unknown environment), and a task
whose environment was missing or different is played again on resume; the summary counts
only the tasks and trials of the current run.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

STORE_FILE = "eval.sqlite"
NOT_COMPARED = frozenset({"environment_roots"})
"""Configuration keys recorded but free to change on resume."""
RETRIED_BAD = ("unknown_environment", "environment_mismatch", "invalid_environment")
"""Bad-task codes that depend on where environments are looked up: retried on resume."""
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
        old = json.loads(row[0]) if row is not None else config
        keys = (set(old) | set(config)) - NOT_COMPARED
        changed = sorted(k for k in keys if old.get(k) != config.get(k))
        if not changed:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (text,))
        else:
            raise ConfigMismatch(
                f"{self.folder} holds results of another configuration "
                f"(different {', '.join(changed)}); use a new output folder"
            )

    def done(self) -> set[tuple[str, int]]:
        """Episodes that need no rerun: scored, or a bad task (not one of `RETRIED_BAD`)."""
        rows = self.db.execute("SELECT task_id, trial, status, reason FROM episodes")
        return {
            (task_id, trial)
            for task_id, trial, status, reason in rows
            if status == "scored" or (status == "bad_task" and reason not in RETRIED_BAD)
        }

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
