"""Graph states. JSON-native only (dicts, lists, strings, numbers), so any checkpointer works."""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict

from gem_graph.contracts import Problem, Record, Reject


def merge_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    """Reducer for per-stage attempt counters: later writes win per stage."""
    return {**(left or {}), **(right or {})}


class RejectReason(TypedDict):
    """Why a node refused the document; the `reject` node turns it into a `Reject`."""

    code: str
    reason: str
    problems: NotRequired[list[Problem]]


class GemInput(TypedDict):
    """What the document graph takes: one document `{"id", "text", "meta"?}`."""

    document: dict[str, Any]


class GemOutput(TypedDict):
    """What the document graph gives back. Lists, so a parent can fan in with `operator.add`.

    `environments` holds the full environment (manifest, schema_sql, seed, tools_py) of each
    kept record, so a caller can save it; records refer to it by name and content hash.
    """

    records: list[Record]
    rejects: list[Reject]
    usage: list[dict[str, Any]]
    environments: list[dict[str, Any]]


class GemState(TypedDict, total=False):
    """Everything one document's run carries between nodes."""

    document: dict[str, Any]
    labels: dict[str, Any]
    blueprint: dict[str, Any]
    environment: dict[str, Any]
    trajectory: dict[str, Any]
    verification: dict[str, Any] | None
    judge: dict[str, Any]
    stage: str
    draft: dict[str, Any] | None
    draft_error: str | None
    problems: list[dict[str, Any]]
    feedback: str
    attempts: Annotated[dict[str, int], merge_counts]
    refined: bool
    refine_problems: list[dict[str, Any]]
    reject_reason: RejectReason
    records: Annotated[list[Record], operator.add]
    rejects: Annotated[list[Reject], operator.add]
    usage: Annotated[list[dict[str, Any]], operator.add]
    environments: Annotated[list[dict[str, Any]], operator.add]


class CorpusInput(TypedDict):
    """What the corpus graph takes: a list of documents."""

    documents: list[dict[str, Any]]


class CorpusState(TypedDict, total=False):
    documents: list[dict[str, Any]]
    records: Annotated[list[Record], operator.add]
    rejects: Annotated[list[Reject], operator.add]
    usage: Annotated[list[dict[str, Any]], operator.add]
    environments: Annotated[list[dict[str, Any]], operator.add]
