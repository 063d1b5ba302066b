"""The `records` export format: each record exactly as the contract defines it.

The run store keeps records inside `run.sqlite`; this writes them out one per line, with
every field (environment reference, scenario, verification, task, provenance), so that
`gem-graph verify` and other tools can read them without the store.
"""

from __future__ import annotations

import copy
from typing import Any


def to_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record itself (a copy: exports never share state with the caller)."""
    return copy.deepcopy(record)
