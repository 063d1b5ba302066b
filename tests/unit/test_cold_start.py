"""Start-up: the command line must not pay for modules it never uses."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runner_and_store_never_loads_pandas_or_numpy() -> None:
    code = (
        "import sys, gem_graph.cli, gem_graph.run.runner, gem_graph.run.store\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))\n"
        "import sqlite_utils; print(sqlite_utils.db.pd is None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"], done.stdout


def test_the_block_is_lifted_after_the_import() -> None:
    code = (
        "import importlib.util, gem_graph.run.store, sys\n"
        "print(sys.modules.get('pandas', 'absent') is None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
