"""The record and reject formats of the architecture's contract, as types.

Records and rejects are JSON-native dicts everywhere: in graph state, in the run store, on
disk. So the types are `TypedDict`s: mypy checks every place that builds one, nothing
changes at runtime, and pydantic's `TypeAdapter` validates them and generates their JSON
Schema at the boundary (`record.schema.json`, `reject.schema.json` beside this module;
regenerate with `python -m gem_graph.contracts`).

The published schemas leave objects open to added fields: the contract lets fields be
added, and a reader validating with an older schema should still accept newer records.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

_DOCS = ConfigDict(use_attribute_docstrings=True)

# ---- problems and rejects -----------------------------------------------------------------


@with_config(_DOCS)
class Problem(TypedDict):
    """A check's finding; `code` is one of the stable problem codes."""

    code: str
    message: str
    where: str
    """Where in the input the problem is, e.g. `messages[4].tool_calls[0]`; may be empty."""


@with_config(_DOCS)
class StageUsage(TypedDict):
    """Model calls, tokens and seconds of one stage (or of all, in the `total` row)."""

    calls: int
    input_tokens: int
    output_tokens: int
    seconds: float


Usage = dict[str, StageUsage]
"""Per-stage usage, keyed by stage name, plus a `total` row; empty when no model was called."""


@with_config(_DOCS)
class Reject(TypedDict):
    """Where a document stopped, after how many attempts, and why."""

    doc_id: str
    stage: str
    """The stage that gave up: `input`, `intake`, an LLM stage, or `runner`."""
    attempts: int
    code: str
    """The problem code that decided the reject (the first problem's)."""
    reason: str
    problems: list[Problem]
    usage: Usage


def make_reject(
    doc_id: str,
    stage: str,
    code: str,
    reason: str,
    *,
    attempts: int = 0,
    problems: list[Problem] | None = None,
    usage: Usage | None = None,
    where: str = "",
) -> Reject:
    """The one place a reject is built. Without `problems`, the reason is the one problem."""
    return {
        "doc_id": doc_id,
        "stage": stage,
        "attempts": attempts,
        "code": code,
        "reason": reason,
        "problems": (
            list(problems)
            if problems is not None
            else [{"code": code, "message": reason, "where": where}]
        ),
        "usage": usage if usage is not None else {},
    }


# ---- record parts -------------------------------------------------------------------------


@with_config(_DOCS)
class Source(TypedDict):
    """The text a record came from."""

    doc_id: str
    text_sha256: str
    labels: dict[str, Any]
    """The filter's labels (summary, platform, domain, category, reason)."""
    meta: dict[str, Any]
    """The corpus line's other fields."""


@with_config(_DOCS)
class EnvironmentRef(TypedDict):
    """The environment a record runs against: its name and content hash."""

    name: str
    sha256: str


@with_config(_DOCS)
class Scenario(TypedDict):
    """The episode's clock and its extra seed rows."""

    now: str | None
    """ISO-8601 datetime of the scenario clock; null for the default clock."""
    rows: dict[str, list[dict[str, Any]]]


@with_config(_DOCS)
class ToolFunction(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]
    """The arguments' JSON Schema."""


@with_config(_DOCS)
class Tool(TypedDict):
    """A tool in OpenAI function format."""

    type: Literal["function"]
    function: ToolFunction


@with_config(_DOCS)
class FunctionCall(TypedDict):
    name: str
    arguments: str
    """The arguments as a JSON object string."""


@with_config(_DOCS)
class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


@with_config(_DOCS)
class Message(TypedDict):
    """A message in OpenAI chat format."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None
    tool_calls: NotRequired[list[ToolCall]]
    """Assistant messages only."""
    tool_call_id: NotRequired[str]
    """Tool messages only: the id of the call answered."""


@with_config(_DOCS)
class CallResult(TypedDict):
    """One executed call: what the tool code really returned."""

    message_index: int
    call_id: str
    tool: str
    status: Literal["ok", "tool_error"]
    output: Any
    """The return value, or the `ToolError` message."""


@with_config(_DOCS)
class RowUpdate(TypedDict):
    key: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    """The changed columns only, before and after."""


@with_config(_DOCS)
class TableDiff(TypedDict):
    inserted: list[dict[str, Any]]
    updated: list[RowUpdate]
    deleted: list[dict[str, Any]]


@with_config(_DOCS)
class Verification(TypedDict):
    """The sandbox replay of a trajectory."""

    calls: list[CallResult]
    state_diff: dict[str, TableDiff]
    """Row-level changes per table between the initial and the final state."""
    final_state_sha256: str | None
    """Hash of the final database state; null when the replay could not finish."""
    deterministic: bool | None
    """Whether a second replay gave the same outputs and state; null when not checked."""
    isolation: dict[str, Any]
    """The sandbox layers that applied (`tier`, `landlock`, `seccomp`, ...)."""
    state_hash_version: NotRequired[int]
    """Version of the state hash algorithm; present when `final_state_sha256` is."""


@with_config(_DOCS)
class RubricVerdict(TypedDict):
    passed: bool
    reason: str


@with_config(_DOCS)
class Judge(TypedDict):
    """The rule checks and the LLM rubric (R1-R4) verdicts."""

    passed: bool
    rubrics: dict[str, RubricVerdict]
    rule_checks: dict[str, Any]


@with_config(_DOCS)
class DialogueStats(TypedDict):
    """Counts over a dialogue (`checks.stats.trajectory_stats`)."""

    messages: int
    user_turns: int
    assistant_turns: int
    tool_calls: int
    distinct_tools: int
    tool_errors: int
    errors_recovered: int
    """Tool errors followed later by a successful call of the same tool."""
    patterns: list[str]
    """The behaviour patterns the dialogue exercises, sorted."""


@with_config(_DOCS)
class Stats(DialogueStats):
    """A record's dialogue counts, and how refinement went."""

    refined: bool
    """False when refinement ran out and the verified grounded trajectory was kept."""
    refine_problems: NotRequired[list[str]]
    """The problem codes refinement was left with, when it ran out."""


@with_config(_DOCS)
class StepSpan(TypedDict):
    workflow: str
    step: str
    span: list[int] | None
    """`[start, end]` character offsets in the source text; null when not found."""


@with_config(_DOCS)
class RuleSpan(TypedDict):
    rule: str
    span: list[int] | None


@with_config(_DOCS)
class Spans(TypedDict):
    """Where each tool, workflow step and rule of the blueprint occurs in the source text."""

    tools: dict[str, list[int] | None]
    steps: list[StepSpan]
    rules: list[RuleSpan]


@with_config(_DOCS)
class Provenance(TypedDict):
    """What produced a record."""

    package: str
    """`gem-graph <version>`."""
    mode: Literal["pipeline", "synthesizer"]
    models: dict[str, str]
    prompts: dict[str, str]
    """Prompt `name@version` per stage."""
    spans: Spans | None
    """Null when the blueprint has no quotes, as in synthesizer mode."""


@with_config(_DOCS)
class UserGoal(TypedDict):
    """The dialogue's user as a goal a simulator can play (added in 0.2; optional)."""

    persona: str
    wants: str
    known_facts: list[str]
    accepts: list[str]
    refuses: list[str]


@with_config(_DOCS)
class Record(TypedDict):
    """One kept trajectory: a verified dialogue, its environment and how it was made."""

    id: str
    """`<doc_id>#<first 8 hex digits of text_sha256>`."""
    source: Source
    environment: EnvironmentRef | None
    """Null when the pipeline ran without execution."""
    scenario: Scenario
    tools: list[Tool]
    messages: list[Message]
    verification: Verification | None
    """Null when the pipeline ran without execution."""
    judge: Judge | None
    """Null when the judge was off."""
    stats: Stats
    usage: Usage
    provenance: Provenance
    user_goal: NotRequired[UserGoal | None]
    """Who the user is and what they want, for `tasks` and `gem-graph eval`; absent in
    records written before goals existed."""


# ---- validation and schemas ---------------------------------------------------------------

RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(Record)
REJECT_ADAPTER: TypeAdapter[Reject] = TypeAdapter(Reject)

SCHEMA_FILES: dict[str, TypeAdapter[Any]] = {
    "record.schema.json": RECORD_ADAPTER,
    "reject.schema.json": REJECT_ADAPTER,
}
"""Each schema file beside this module and the type it is generated from."""


def json_schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one contract type, as written to its file."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **adapter.json_schema()}
