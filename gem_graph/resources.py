"""Locate the data folders (prompts, environments, demo) shipped beside or inside the package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT_PATHS = {"demo": "examples/demo"}
"""Folders whose place in a development checkout differs from their name under `_data/`."""


def data_dir(name: str) -> Path:
    """Return the folder `name`: the checkout's copy in development, `_data/` in a wheel.

    In a checkout most folders sit at the top level (`prompts/`, `environments/`); the
    demo data sits in `examples/demo/`. A wheel ships each as `gem_graph/_data/<name>`.
    """
    checkout = _PACKAGE.parent / _CHECKOUT_PATHS.get(name, name)
    for candidate in (checkout, _PACKAGE / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"gem-graph data folder {name!r} is missing from the installation")
