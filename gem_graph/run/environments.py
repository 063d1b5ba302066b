"""Saving the environments a run produced into `RUN_DIR/environments/`, safely when
several processes save the same one at once."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gem_graph.run.store import RunStore

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def isolation_label(records: list[dict[str, Any]]) -> str | None:
    """The sandbox isolation the records report (`verification.isolation`), as text."""
    for record in records:
        isolation = (record.get("verification") or {}).get("isolation")
        if isinstance(isolation, str):
            return isolation
        if isinstance(isolation, Mapping):
            if isinstance(isolation.get("tier"), str):
                return str(isolation["tier"])
            layers = sorted(k for k, v in isolation.items() if v is True)
            return "+".join(layers) or None
    return None


def save_environments(
    store: RunStore, run_dir: Path, environments: list[dict[str, Any]]
) -> dict[str, tuple[str, str]]:
    """Write each environment not yet in the store to `run_dir/environments/<name>/`.

    `environments` are the document graph's output entries (manifest, schema_sql, seed,
    tools_py). A name already used by different content gets a `-<sha8>` suffix. Each folder
    is written under a temporary name and renamed, so a kill never leaves half a folder.
    Returns content hash → (environment name, folder relative to `run_dir`) for the store.
    """
    from gem_graph.environment import EnvironmentFormatError
    from gem_graph.stages.implement import environment_from_state

    env_dir = run_dir / "environments"
    saved: dict[str, tuple[str, str]] = {}
    for data in environments:
        try:
            env = environment_from_state(data)
        except (EnvironmentFormatError, KeyError, TypeError):
            continue
        sha = env.content_hash()
        if sha in saved or store.environment_path(sha):
            continue
        name = _SAFE_NAME.sub("_", env.name).strip("._") or "environment"
        for candidate in (name, f"{name}-{sha[:8]}"):
            folder = env_dir / candidate
            if _place_environment(env, sha, folder):
                saved[sha] = (env.name, folder.relative_to(run_dir).as_posix())
                break
    return saved


def _place_environment(env: Any, sha: str, folder: Path) -> bool:
    """Make `folder` hold `env`; False when it holds a different environment.

    Several worker processes may save the same environment at once: each writes its own
    staging folder and renames it; a rename that loses the race (the folder appeared in
    between) drops its copy and checks what the winner wrote.
    """
    from gem_graph.environment import save_environment

    if folder.exists():
        return _holds_environment(folder, sha)
    staging = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    save_environment(env, staging)
    try:
        os.replace(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return _holds_environment(folder, sha)
    return True


def _holds_environment(folder: Path, sha: str) -> bool:
    from gem_graph.environment import EnvironmentFormatError, load_environment

    try:
        return load_environment(folder).content_hash() == sha
    except EnvironmentFormatError:
        return False
