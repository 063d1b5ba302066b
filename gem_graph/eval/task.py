"""An evaluation task as `gem-graph export --format tasks` writes it, read defensively.

Task files are untrusted: each line is parsed strictly and validated; a line that is not
a usable task becomes a `BadTask` with its reason, and reading goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gem_graph import strictjson

MAX_TASK_LINE_BYTES = 8 * 1024 * 1024


class EnvironmentRef(BaseModel):
    """Which environment a task runs in: its name and, when known, its content hash."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=200)
    sha256: str | None = None


class Scenario(BaseModel):
    """The episode's clock and its extra seed rows."""

    model_config = ConfigDict(extra="ignore")
    now: str | None = None
    rows: dict[str, Any] = Field(default_factory=dict)


class UserGoal(BaseModel):
    """What a simulated user pursues: who they are, what they want, what they know."""

    model_config = ConfigDict(extra="ignore")
    persona: str = ""
    wants: str = ""
    known_facts: list[str] = Field(default_factory=list)
    accepts: list[str] = Field(default_factory=list)
    refuses: list[str] = Field(default_factory=list)


class RequiredFact(BaseModel):
    """A value from a tool output that the agent must tell the user."""

    model_config = ConfigDict(extra="ignore")
    value: str | int | float
    tool: str = ""


class EvalTask(BaseModel):
    """One task: the environment, the start, the goal, and what success means."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=500)
    environment: EnvironmentRef
    scenario: Scenario = Field(default_factory=Scenario)
    tools: list[dict[str, Any]]
    system: str | None = None
    instruction: str
    user_turns: list[str] = Field(default_factory=list)
    user_goal: UserGoal | None = None
    goal_missing: bool = False
    required_facts: list[RequiredFact] = Field(default_factory=list)
    reference_messages: list[dict[str, Any]] = Field(default_factory=list)
    expected_final_state_sha256: str = Field(min_length=1)
    expected_state_diff: dict[str, Any] = Field(default_factory=dict)

    @property
    def environment_name(self) -> str:
        return self.environment.name


@dataclass(frozen=True)
class BadTask:
    """A task line that cannot be evaluated, and why (`code` is stable)."""

    id: str
    code: str
    reason: str
    environment: str | None = None


def parse_task(value: Any, line_number: int) -> EvalTask | BadTask:
    """A validated task, or a `BadTask` naming the line and what is wrong."""
    fallback = f"line-{line_number}"
    raw_id = value.get("id") if isinstance(value, dict) else None
    task_id = raw_id if isinstance(raw_id, str) and raw_id else fallback
    if not isinstance(value, dict):
        return BadTask(task_id, "invalid_task", f"line {line_number}: a task is a JSON object")
    try:
        return EvalTask.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "task"
        return BadTask(task_id, "invalid_task", f"line {line_number}: {where}: {first['msg']}")


def read_tasks(path: str | Path) -> list[EvalTask | BadTask]:
    """Every line of a tasks JSONL file, as a task or a bad task.

    Every item gets an id no other item has, since results are stored per (id, trial): a
    task keeps its own id (the first of a repeated id wins); a repeat and a bad line get
    `ID#dup-line-N` or `line-N`, made unique against every id in the file.
    """
    parsed: list[tuple[int, EvalTask | BadTask]] = []
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            item: EvalTask | BadTask
            if len(raw) > MAX_TASK_LINE_BYTES:
                item = BadTask(f"line-{number}", "invalid_task", f"line {number} is too long")
            else:
                try:
                    item = parse_task(strictjson.loads(raw.decode("utf-8")), number)
                except (UnicodeDecodeError, strictjson.StrictJSONError) as exc:
                    item = BadTask(f"line-{number}", "invalid_task", f"line {number}: {exc}")
            parsed.append((number, item))
    return _unique_ids(parsed)


def _unique_ids(parsed: list[tuple[int, EvalTask | BadTask]]) -> list[EvalTask | BadTask]:
    """Give repeats and bad lines ids that collide with nothing else in the file."""
    kept: dict[int, EvalTask] = {}
    kept_ids: set[str] = set()
    for number, item in parsed:
        if isinstance(item, EvalTask) and item.id not in kept_ids:
            kept[number] = item
            kept_ids.add(item.id)
    reserved = kept_ids | {item.id for _, item in parsed}
    out: list[EvalTask | BadTask] = []
    given: set[str] = set()
    for number, item in parsed:
        if number in kept:
            out.append(item)
            continue
        duplicate = f"line {number}: duplicate id {item.id!r}"
        reason = item.reason if isinstance(item, BadTask) else duplicate
        code = item.code if isinstance(item, BadTask) else "invalid_task"
        environment = item.environment if isinstance(item, BadTask) else item.environment.name
        new_id = item.id
        if isinstance(item, EvalTask) or new_id in kept_ids or new_id in given:
            new_id = f"{item.id}#dup-line-{number}"
            while new_id in reserved or new_id in given:
                new_id += "~"
        given.add(new_id)
        out.append(BadTask(new_id, code, reason, environment))
    return out
