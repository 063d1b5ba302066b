"""Export formats: records → OpenAI chat, ShareGPT (LLaMA-Factory), Hermes text, tasks,
or the records themselves.

Every `to_*` function is pure: one record dict in, one JSON-native row out. A record that
a format cannot represent raises `ExportError` naming the reason; `export_records` writes
JSONL and either raises or collects those errors; `export_run` exports a run folder.

One module per concern; each format's module says which choices it makes, so a user
knows what the rows hold:

- `openai_chat`: `openai`, `{"messages", "tools"}` for HF datasets, TRL and OpenAI;
- `sharegpt`: `sharegpt`, LLaMA-Factory's tool format, roles made to alternate;
- `hermes`: `hermes`, `{"text"}` in the Hermes tool template, and `parse_hermes`;
- `tasks`: `tasks`, an evaluation task per executed record;
- `records`: `records`, the contract's record as it is, for `verify` and other tools;
- `dialogue`: reading a record's messages and tool calls, shared by the formats;
- `jsonl`: the format registry and the JSONL writer (`FORMATS`, `export_records`);
- `run_folder`: reading a run folder and writing the export file (`export_run`).
"""

from __future__ import annotations

from gem_graph.export.dialogue import ExportError
from gem_graph.export.hermes import (
    HERMES_CALL_INSTRUCTIONS,
    HERMES_TOOLS_PREAMBLE,
    IM_END,
    IM_START,
    parse_hermes,
    to_hermes,
)
from gem_graph.export.jsonl import EXPORTERS, FORMATS, export_records
from gem_graph.export.openai_chat import to_openai
from gem_graph.export.records import to_record
from gem_graph.export.run_folder import RunExport, UnusableRun, export_run
from gem_graph.export.sharegpt import to_sharegpt
from gem_graph.export.tasks import to_task

__all__ = [
    "EXPORTERS",
    "FORMATS",
    "HERMES_CALL_INSTRUCTIONS",
    "HERMES_TOOLS_PREAMBLE",
    "IM_END",
    "IM_START",
    "ExportError",
    "RunExport",
    "UnusableRun",
    "export_records",
    "export_run",
    "parse_hermes",
    "to_hermes",
    "to_openai",
    "to_record",
    "to_sharegpt",
    "to_task",
]
