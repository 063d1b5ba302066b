"""Importing a dependency without the optional heavy modules it would pull in."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from types import ModuleType


def import_without(name: str, optional: Iterable[str]) -> ModuleType:
    """Import `name` as if the `optional` modules were not installed.

    `sqlite_utils` imports pandas and numpy when they are present (about 0.8 s of CPU) only
    to accept DataFrames and numpy scalars, which we never pass. Modules already imported
    are left alone, and the block is lifted afterwards, so they stay importable.
    """
    blocked = [module for module in optional if module not in sys.modules]
    for module in blocked:
        sys.modules[module] = None  # type: ignore[assignment]  # makes `import` raise
    try:
        return importlib.import_module(name)
    finally:
        for module in blocked:
            if sys.modules.get(module) is None:
                del sys.modules[module]
