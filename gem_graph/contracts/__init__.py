"""The contract as types: the record and reject formats others depend on.

See `gem_graph.contracts.record` for the types, and `record.schema.json` /
`reject.schema.json` in this package for their JSON Schemas.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from gem_graph.contracts.record import (
    RECORD_ADAPTER,
    REJECT_ADAPTER,
    SCHEMA_FILES,
    CallResult,
    DialogueStats,
    EnvironmentRef,
    Judge,
    Message,
    Problem,
    Provenance,
    Record,
    Reject,
    Scenario,
    Source,
    Stats,
    Tool,
    ToolCall,
    Usage,
    Verification,
    json_schema,
    make_reject,
)

__all__ = [
    "RECORD_ADAPTER",
    "REJECT_ADAPTER",
    "SCHEMA_DIR",
    "CallResult",
    "DialogueStats",
    "EnvironmentRef",
    "Judge",
    "Message",
    "Problem",
    "Provenance",
    "Record",
    "Reject",
    "Scenario",
    "Source",
    "Stats",
    "Tool",
    "ToolCall",
    "Usage",
    "Verification",
    "closed_schema",
    "load_schema",
    "make_reject",
    "schema_texts",
    "write_schemas",
]

SCHEMA_DIR = Path(__file__).parent
"""Where the generated schema files live (inside the package, so they ship in the wheel)."""


def schema_texts() -> dict[str, str]:
    """File name → the text the schema file must hold, generated from the types."""
    return {
        name: json.dumps(json_schema(adapter), indent=2, ensure_ascii=False) + "\n"
        for name, adapter in SCHEMA_FILES.items()
    }


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate the schema files; returns the ones whose content changed."""
    changed = []
    for name, text in schema_texts().items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def load_schema(name: str) -> dict[str, Any]:
    """A committed schema file, e.g. `load_schema("record.schema.json")`."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return loaded


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` with every object closed to undeclared fields.

    The published schemas stay open (the contract lets fields be added); tests validate our
    own output against the closed form, so a field written but not typed is caught.
    """
    closed = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(closed)
    return closed
