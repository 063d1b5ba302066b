"""What every LLM stage shares: the stage context, one attempt of a call, and feedback."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from gem_graph.checks.problems import ProblemDict, format_feedback, problem
from gem_graph.llm import StructuredLLM, StructuredResult, json_schema_of
from gem_graph.pipeline import output_cap, stage_spec
from gem_graph.prompts import load_prompt
from gem_graph.settings import Settings

T = TypeVar("T", bound=BaseModel)


def dump(value: Any) -> str:
    """JSON for prompts: compact, which costs the model fewer tokens than indented JSON and
    the client less CPU (indenting forces Python's slow pure-Python encoder)."""
    return json.dumps(value, ensure_ascii=False)


def bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "(none stated)"


def confirm_before_tools(state: dict[str, Any]) -> list[str]:
    """The tools needing the user's agreement: the environment's list, else the blueprint's."""
    environment = state.get("environment")
    if environment:
        return list(environment["manifest"].get("confirm_before") or [])
    return list((state.get("blueprint") or {}).get("confirm_before") or [])


@dataclass
class StageContext:
    """What nodes need besides state: bound once by the graph factory (a closure)."""

    llm: StructuredLLM
    settings: Settings
    model_name: str
    sandbox: Callable[[], Any] | None = None
    """Returns the `Sandbox` for the running event loop; None when execution is off."""
    prompt_versions: dict[str, str] = field(default_factory=dict)

    def cap(self, stage: str) -> int:
        """The attempts cap of `stage`: its registry entry's `Settings.attempts` field."""
        return int(getattr(self.settings.attempts, stage_spec(stage).attempts))

    def output_cap(self, stage: str) -> int:
        """The token cap of one reply of `stage` (`model.max_tokens`, else the stage's)."""
        return output_cap(stage, self.settings.model.max_tokens)

    def prepare(
        self, state: dict[str, Any], *, stage: str, values: dict[str, Any]
    ) -> tuple[int, list[dict[str, str]], dict[str, Any]]:
        """The next attempt of `stage`: its number, its rendered prompt (with any feedback
        from the failed attempt before) and the run config whose metadata names the stage,
        document and attempt (for tracing, and for scripted models choosing a reply)."""
        attempt = state.get("attempts", {}).get(stage, 0) + 1
        feedback = state.get("feedback", "") if state.get("stage") == stage else ""
        prompt = load_prompt(stage)
        self.prompt_versions[stage] = prompt.key
        messages = prompt.render(**values, feedback=feedback)
        config: dict[str, Any] = {
            "run_name": f"gem.{stage}",
            "metadata": {
                "gem_stage": stage,
                "gem_doc_id": str(state.get("document", {}).get("id", "?")),
                "gem_attempt": attempt,
                "gem_prompt": prompt.key,
            },
        }
        return attempt, messages, config

    async def ask(
        self, state: dict[str, Any], *, stage: str, schema: type[T], values: dict[str, Any]
    ) -> tuple[dict[str, Any], StructuredResult[T]]:
        """Run one attempt of `stage` and parse the answer as `schema`.

        Returns the state update (stage, attempt count, usage) and the call's result.
        """
        output_schema = json.dumps(json_schema_of(schema), ensure_ascii=False)
        attempt, messages, config = self.prepare(
            state, stage=stage, values={**values, "output_schema": output_schema}
        )
        result = await self.llm.call(
            schema,
            messages,
            stage=stage,
            config=config,  # type: ignore[arg-type]
            max_tokens=self.output_cap(stage),
        )
        return attempt_update(stage, attempt, dict(result.usage)), result

    async def draft(
        self,
        state: dict[str, Any],
        *,
        stage: str,
        schema: type[BaseModel],
        values: dict[str, Any],
    ) -> dict[str, Any]:
        """One attempt whose answer a separate check node judges: keep the draft or its error."""
        update, result = await self.ask(state, stage=stage, schema=schema, values=values)
        update["draft"] = result.parsed.model_dump() if result.parsed is not None else None
        update["draft_error"] = result.error
        return update

    def failed(
        self,
        state: dict[str, Any],
        stage: str,
        problems: list[ProblemDict],
        previous: Any = None,
        *,
        attempt: int | None = None,
    ) -> dict[str, Any]:
        """The state update of a failed check: its problems and the next prompt's feedback."""
        return {
            "problems": problems,
            "feedback": feedback_text(
                stage=stage,
                attempt=attempt if attempt is not None else state["attempts"][stage],
                cap=self.cap(stage),
                problems=problems,
                previous=previous,
            ),
        }


def attempt_update(stage: str, attempt: int, usage: dict[str, Any]) -> dict[str, Any]:
    """What every attempt writes to state: the stage, its attempt count and its usage."""
    return {"stage": stage, "attempts": {stage: attempt}, "usage": [usage]}


def missing_draft(state: dict[str, Any]) -> list[ProblemDict]:
    """The problem of an attempt whose answer could not be parsed at all."""
    return [problem("invalid_output", state.get("draft_error") or "no answer")]


def feedback_text(
    *, stage: str, attempt: int, cap: int, problems: list[ProblemDict], previous: Any = None
) -> str:
    """The block appended to the next prompt of `stage` after a failed attempt."""
    lines = [
        f"## Feedback on your previous answer (attempt {attempt} of {cap} failed)",
        "Your previous answer had these problems. Fix every one of them and answer again "
        "with a complete JSON object:",
        format_feedback(problems),
    ]
    if previous is not None:
        lines += ["", "Your previous answer, for reference:", dump(previous)]
    return "\n".join(lines)


def route_attempt(state: dict[str, Any], *, ok: Mapping[str, str], caps: Mapping[str, int]) -> str:
    """Validator-loop routing, for every LLM stage and check: the stage that just ran
    (`state["stage"]`) refused the document → reject; its answer passed → on to `ok[stage]`;
    attempts left under `caps[stage]` → back to the stage; else reject."""
    if state.get("reject_reason"):
        return "reject"
    stage = state["stage"]
    if not state.get("problems"):
        return ok[stage]
    if state.get("attempts", {}).get(stage, 0) < caps[stage]:
        return str(stage)
    return "reject"
