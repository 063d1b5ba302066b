"""Pydantic models at the boundaries: what a model must answer, and the documents we read.

Model-facing models avoid free-form objects (strict JSON-schema mode forbids them), so
JSON Schemas and argument objects travel as JSON strings and are parsed afterwards.
Graph state never holds these objects, only their `model_dump()`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Platform = Literal["operator", "computer", "phone", "machine", "other"]
Role = Literal["system", "user", "assistant", "tool"]
PATTERNS = (
    "rule_conflict",
    "error_recovery",
    "clarification",
    "multi_hop",
    "rule_awareness",
)
Pattern = Literal["rule_conflict", "error_recovery", "clarification", "multi_hop", "rule_awareness"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- filter -------------------------------------------------------------------------------


class FilterOutput(_Out):
    """Relevance verdict and labels for one text segment."""

    relevant: bool = Field(
        description="True when the text describes a multi-step procedure "
        "carried out with an app, website, computer or machine."
    )
    reason: str = Field(description="One sentence justifying the verdict.")
    summary: str = Field(description="One-sentence summary of the task the text describes.")
    platform: Platform
    domain: str = Field(description="Domain label, e.g. e_commerce, healthcare, finance.")
    category: str = Field(description="Task category label, e.g. account_management.")


# ---- extract ------------------------------------------------------------------------------


class ToolDraft(_Out):
    """One tool as the model proposes it; `parameters_json` is a JSON Schema object as text."""

    name: str
    description: str
    parameters_json: str = Field(description="JSON Schema of the arguments, as a JSON string.")
    read_only: bool = Field(description="True when the tool never changes state.")


class ExtractedTool(ToolDraft):
    """A tool as the extraction proposes it, with the words of the text it rests on."""

    confirm_before: bool = Field(
        description="True when the text says the user must agree before this action "
        "(only for tools that change state)."
    )
    quote: str = Field(description="The words of the text this tool is based on, verbatim.")


class StepDraft(_Out):
    step: str = Field(description="The step, as a short imperative sentence.")
    quote: str = Field(description="The words of the text this step comes from, verbatim.")


class RuleDraft(_Out):
    rule: str = Field(description="The rule, as a short checkable statement.")
    quote: str = Field(description="The words of the text this rule rests on, verbatim.")


class ExampleCall(_Out):
    tool: str
    arguments_json: str = Field(description="Realistic arguments, as a JSON object string.")


class WorkflowDraft(_Out):
    name: str
    description: str
    steps: list[StepDraft]
    graph: str = Field(description="Execution graph, e.g. (login)->(search)->(add_to_cart, pay).")
    constraints: list[str] = Field(
        description="Dependencies, uniqueness/limits and conditionals the workflow must respect."
    )
    example_calls: list[ExampleCall]


class ExtractOutput(_Out):
    workflows: list[WorkflowDraft]
    tools: list[ExtractedTool]
    rules: list[RuleDraft] = Field(description="Domain rules stated or implied by the text.")


# ---- implement ----------------------------------------------------------------------------


class ImplementOutput(_Out):
    """An executable environment for the extracted tools."""

    schema_sql: str = Field(description="SQLite DDL: CREATE TABLE statements only.")
    seed_json: str = Field(description='Seed rows as a JSON object string: {"table": [row, ...]}.')
    tools_py: str = Field(description="Python module defining one function per tool.")
    policy: str = Field(description="The domain rules, as text, that the code enforces.")


# ---- ground / refine ----------------------------------------------------------------------


class FunctionCallDraft(_Out):
    name: str
    arguments: str = Field(description="Arguments as a JSON object string.")


class ToolCallDraft(_Out):
    id: str
    type: Literal["function"]
    function: FunctionCallDraft


class MessageDraft(_Out):
    role: Role
    content: str | None
    tool_calls: list[ToolCallDraft] | None = Field(
        description="Assistant only: the calls this turn makes; null otherwise."
    )
    tool_call_id: str | None = Field(description="Tool only: the id of the call answered.")


class ScenarioDraft(_Out):
    now: str | None = Field(description="ISO-8601 datetime of the episode's clock, or null.")
    rows_json: str = Field(
        description='Extra seed rows for this episode, as a JSON object string {"table": [row]}.'
    )


class UserGoalDraft(_Out):
    """The user of the dialogue as a simulator would play them (τ-bench's instruction)."""

    persona: str = Field(description="Who the user is, in one sentence.")
    wants: str = Field(description="What the user wants done, in their terms, in order.")
    known_facts: list[str] = Field(
        description="Each fact the user knows and gives when asked (names, numbers, ids "
        "they hold), with its value, e.g. 'card number 2300-1187-42'."
    )
    accepts: list[str] = Field(description="What the user agrees to when offered.")
    refuses: list[str] = Field(description="What the user declines or insists against.")


def _goal_required(schema: dict[str, Any]) -> None:
    """`user_goal` may be left out of a reply (older scripted replies, lenient servers), but
    the schema sent to a model lists it as required with no default, as strict mode wants."""
    required = schema.setdefault("required", [])
    if "user_goal" not in required:
        required.append("user_goal")
    schema.get("properties", {}).get("user_goal", {}).pop("default", None)


class TrajectoryOutput(_Out):
    """A whole dialogue written in one pass."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_goal_required)

    messages: list[MessageDraft]
    scenario: ScenarioDraft
    patterns: list[Pattern] = Field(description="The behaviour patterns this dialogue exercises.")
    new_tools: list[ToolDraft] = Field(
        description="Tools added by refinement; always empty when grounding."
    )
    user_goal: UserGoalDraft | None = Field(
        default=None,
        description="The dialogue's user as a goal a simulator can play: who they are, what "
        "they want, the facts they know and give when asked, what they accept or refuse.",
    )


# ---- judge --------------------------------------------------------------------------------


class RubricVerdict(_Out):
    passed: bool
    reason: str


class JudgeOutput(_Out):
    r1_tool_call_hallucination: RubricVerdict
    r2_capability_hallucination: RubricVerdict
    r3_context_hallucination: RubricVerdict
    r4_policy_and_consent: RubricVerdict


# ---- input --------------------------------------------------------------------------------


class Document(BaseModel):
    """One input text. Extra metadata is kept and carried into the record's `source.meta`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)
