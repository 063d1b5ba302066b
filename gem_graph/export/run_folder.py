"""Exporting a run folder: read its kept records, write them in one format to a file.

The records come from the run store (`run.sqlite`) or, for a folder without one, from a
`records.jsonl` in it. The run store is imported only when a run is exported, so
importing `gem_graph.export` (the command line does, to list the formats) stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gem_graph.export.jsonl import EXPORTERS, FORMATS, export_records


@dataclass(frozen=True)
class RunExport:
    """What `export_run` wrote: the number of rows, and each skipped record's id and reason."""

    written: int
    skipped: list[str]


class UnusableRun(Exception):
    """The format is unknown, or the run folder cannot be read; the message says which."""


def _run_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The kept records of a run folder: its run store, or else a `records.jsonl` in it."""
    from gem_graph.run.store import STORE_FILE, RunStore

    if (run_dir / STORE_FILE).is_file():
        with RunStore(run_dir) as store:
            yield from store.iter_records()
        return
    jsonl = run_dir / "records.jsonl"
    if not jsonl.is_file():
        raise FileNotFoundError(f"{run_dir}: no run store ({STORE_FILE}) and no records.jsonl")
    with jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def export_run(run_dir: Path, fmt: str, out: Path | TextIO) -> RunExport:
    """Write a run's records in `fmt` to the file `out` (created with its folder) or stream.

    Records a format cannot represent are skipped and listed in the result. Raises
    `UnusableRun` for an unknown format or a folder that holds no readable run; nothing
    is created then.
    """
    if fmt not in EXPORTERS:
        raise UnusableRun(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not Path(run_dir).is_dir():
        raise UnusableRun(f"{run_dir}: not a run folder")
    from gem_graph.run.store import StoreError

    records = _run_records(Path(run_dir))
    skipped: list[str] = []
    try:
        if isinstance(out, Path):
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", encoding="utf-8") as handle:
                written = export_records(records, fmt, handle, errors=skipped)
        else:
            written = export_records(records, fmt, out, errors=skipped)
    except (FileNotFoundError, StoreError, ValueError) as exc:
        raise UnusableRun(str(exc)) from None
    return RunExport(written=written, skipped=skipped)
