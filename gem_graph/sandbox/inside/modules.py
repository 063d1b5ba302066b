"""Loading our stdlib-only modules by path: the worker runs `python -S` without gem_graph."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types


def _load_file_module(name: str, path: str, *, package: bool = False) -> types.ModuleType:
    """Load a module (or, with `package`, a package's `__init__.py`) from its path."""
    search = [os.path.dirname(path)] if package else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _install_runtime(path: str) -> types.ModuleType:
    """Make `from gem_graph.runtime import …` work without exposing the package on disk."""
    package = types.ModuleType("gem_graph")
    package.__path__ = []
    sys.modules["gem_graph"] = package
    runtime = _load_file_module("gem_graph.runtime", path)
    package.runtime = runtime  # type: ignore[attr-defined]
    return runtime
