"""What the report tests share besides fixtures: the demo run's shape, the command line
in this process, and copying a run folder. (Imported by name: a `conftest` module name is
shared by every test folder, so tests must not import from it.)"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gem_graph.cli import main


@dataclass(frozen=True)
class DemoRun:
    """The demo's run folder and what `gem-graph demo` printed."""

    path: Path
    stdout: str

    @property
    def report(self) -> Path:
        return self.path / "report.html"


def gem(*args: str | Path) -> tuple[int, str, str]:
    """Run the command line in this process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run folder (store checkpointed first, so the copy is complete)."""
    conn = sqlite3.connect(source / "run.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("report.html"))
    return target
