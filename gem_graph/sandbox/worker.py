"""The sandbox worker's entry script: `python -s -S -B -P worker.py MODE CONFIG_JSON`.

Stdlib only. It loads the `inside` package by path (gem_graph itself is not importable
under `-S`) and runs its entry point. MODE is:
- `single`: serve one episode on fd 0 (requests) / fd 1 (replies);
- `zygote`: a fork server on the inherited unix socket `config["ctl_fd"]`. Per `spawn`
  request it forks an episode process, or a template that builds one database and then
  forks the episodes on it; the child's pipe ends are sent back with a pidfd.

Each worker locks itself down (an unprivileged uid when started as root, rlimits, prctl,
dropped capabilities, Landlock, seccomp) and reports what applied before it serves.
"""

import importlib
import importlib.util
import os
import sys

INSIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inside")


def load_inside() -> object:
    """The `inside` package as `_gg_inside`, with its submodules importable."""
    spec = importlib.util.spec_from_file_location(
        "_gg_inside", os.path.join(INSIDE, "__init__.py"), submodule_search_locations=[INSIDE]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {INSIDE}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["_gg_inside"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("_gg_inside.forks")


if __name__ == "__main__":
    load_inside().main()  # type: ignore[attr-defined]
