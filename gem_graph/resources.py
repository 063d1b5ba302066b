"""Locate the data folders (`prompts/`, `environments/`) shipped beside or inside the package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `name`: the checkout's top level in development, `_data/` in a wheel."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"gem-graph data folder {name!r} is missing from the installation")
