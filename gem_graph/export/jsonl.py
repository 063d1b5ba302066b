"""Writing records as JSON lines in one export format: the format registry and the writer.

`export_records` writes to any text stream; opening files is left to the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from gem_graph.export.dialogue import ExportError
from gem_graph.export.hermes import to_hermes
from gem_graph.export.openai_chat import to_openai
from gem_graph.export.records import to_record
from gem_graph.export.sharegpt import to_sharegpt
from gem_graph.export.tasks import to_task

EXPORTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "openai": to_openai,
    "sharegpt": to_sharegpt,
    "hermes": to_hermes,
    "tasks": to_task,
    "records": to_record,
}
FORMATS = tuple(EXPORTERS)
"""The export format names: `openai`, `sharegpt`, `hermes`, `tasks`, `records`."""


def export_records(
    records: Iterable[dict[str, Any]],
    fmt: str,
    out: TextIO,
    *,
    errors: list[str] | None = None,
) -> int:
    """Write one JSON line per record in format `fmt`; returns the number of lines written.

    A record the format cannot represent raises `ExportError`, unless `errors` is given:
    then its id and reason are appended there and the record is skipped.
    """
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    written = 0
    for record in records:
        try:
            row = exporter(record)
        except ExportError as exc:
            if errors is None:
                raise ExportError(f"record {record.get('id')!r}: {exc}") from None
            errors.append(f"{record.get('id')!r}: {exc}")
            continue
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written
