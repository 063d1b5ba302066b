"""Finding a task's environment: folders searched in order, each environment loaded once.

A task names its environment (`environment.name`, and `sha256` when known). The name must
be a plain folder name; the folder is read with `load_environment` (regular files only,
size-capped, parsed strictly), and its content hash must match the task's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from gem_graph.environment import Environment, EnvironmentFormatError, load_environment
from gem_graph.eval.task import EvalTask

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class TaskError(Exception):
    """A task that cannot be played (unknown environment, corrupt state); `code` is stable."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Catalog(Protocol):
    """Anything that finds a task's environment, raising `TaskError` when it cannot."""

    def get(self, task: EvalTask) -> Environment: ...


class EnvironmentCatalog:
    """Environments found under `roots` (each `root/<name>/environment.json`), cached."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(root) for root in roots]
        self._loaded: dict[str, Environment | TaskError] = {}

    def get(self, task: EvalTask) -> Environment:
        """The task's environment; raises `TaskError` when it is missing, broken or different."""
        name = task.environment.name
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        found = self._loaded[name]
        if isinstance(found, TaskError):
            raise found
        wanted = task.environment.sha256
        if wanted and found.content_hash() != wanted:
            raise TaskError(
                "environment_mismatch",
                f"environment {name!r} has content hash {found.content_hash()[:12]}…, "
                f"the task expects {wanted[:12]}…",
            )
        return found

    def _load(self, name: str) -> Environment | TaskError:
        if not _NAME.match(name):
            return TaskError("unknown_environment", f"{name!r} is not a valid environment name")
        for root in self.roots:
            folder = root / name
            if folder.is_dir():
                try:
                    return load_environment(folder)
                except EnvironmentFormatError as exc:
                    return TaskError("invalid_environment", str(exc))
        where = ", ".join(str(root) for root in self.roots) or "(no folders)"
        return TaskError(
            "unknown_environment",
            f"no environment {name!r} under {where}; pass the run folder's with "
            "--environments RUN_DIR/environments",
        )


def default_roots(tasks_file: Path) -> list[Path]:
    """Where a tasks file's environments usually are: `environments/` beside it, or one up
    (a run folder's), then the reference environments bundled with gem-graph."""
    from gem_graph.resources import data_dir

    here = tasks_file.resolve().parent
    roots = [here / "environments", here.parent / "environments"]
    bundled = data_dir("environments")
    return [*dict.fromkeys([*roots, Path(bundled)])]
