"""The stage registry: every LLM stage once, with what the rest of the code needs to know.

The settings fingerprint, the cache namespace, `--attempts`, the run store's funnel,
`compare`, the demo and both graph factories read their stage lists from here, so a stage
added or a prompt bumped here reaches all of them.

Order is the order a document meets the stages: the pipeline's five, then the synthesizer
(the other mode's one generation), then the judge both modes end with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from gem_graph.schemas import (
    ExtractOutput,
    FilterOutput,
    ImplementOutput,
    JudgeOutput,
    TrajectoryOutput,
)

Mode = Literal["pipeline", "synthesizer"]
Switch = Literal["execute", "refine", "judge"]


@dataclass(frozen=True)
class StageSpec:
    """One LLM stage: its node name (also its usage and reject stage) and how it is run."""

    name: str
    prompt: str
    """The prompt file `prompts/<prompt>.md`."""
    schema: type[BaseModel] | None
    """What the model answers; None when the answer is tagged text (the synthesizer)."""
    attempts: str
    """The field of `Settings.attempts` capping its validator loop."""
    check: str | None
    """The node checking its answer; None when the stage routes on its own answer."""
    modes: frozenset[Mode]
    switch: Switch | None = None
    """The `Settings.pipeline` switch that turns the stage on; None: always on in its modes."""
    replays: bool = False
    """Its check replays the dialogue: its rejects are failed verifications."""
    max_tokens: int = 8192
    """Default cap on one reply's tokens (`model.max_tokens` overrides it for every stage);
    it also sizes the request timeout a probe derives for slow servers."""


_PIPELINE: frozenset[Mode] = frozenset({"pipeline"})

STAGES: tuple[StageSpec, ...] = (
    StageSpec("filter", "filter", FilterOutput, "filter", None, _PIPELINE, max_tokens=1024),
    StageSpec(
        "extract",
        "extract",
        ExtractOutput,
        "extract",
        "check_blueprint",
        _PIPELINE,
        max_tokens=6144,
    ),
    StageSpec(
        "implement",
        "implement",
        ImplementOutput,
        "implement",
        "check_environment",
        _PIPELINE,
        switch="execute",
    ),
    StageSpec("ground", "ground", TrajectoryOutput, "ground", "verify", _PIPELINE, replays=True),
    StageSpec(
        "refine",
        "refine",
        TrajectoryOutput,
        "refine",
        "verify",
        _PIPELINE,
        switch="refine",
        replays=True,
    ),
    StageSpec(
        "synthesizer",
        "synthesizer",
        None,
        "synthesizer",
        "check",
        frozenset({"synthesizer"}),
        replays=True,
        max_tokens=16384,
    ),
    StageSpec(
        "judge",
        "judge",
        JudgeOutput,
        "judge",
        None,
        frozenset({"pipeline", "synthesizer"}),
        switch="judge",
        max_tokens=2048,
    ),
)
BY_NAME: Mapping[str, StageSpec] = {spec.name: spec for spec in STAGES}
LLM_STAGES: tuple[str, ...] = tuple(BY_NAME)
"""Nodes that call the model, in registry order."""


def output_cap(stage: str, max_tokens: int | None) -> int:
    """The token cap of one reply of `stage`: the setting when given, else the stage's."""
    return max_tokens if max_tokens is not None else BY_NAME[stage].max_tokens


def stage_spec(name: str) -> StageSpec:
    """The registry entry of `name`; KeyError for a node that is no LLM stage."""
    return BY_NAME[name]


def _switches(pipeline: Any) -> Mapping[str, Any]:
    """`Settings.pipeline` or its stored JSON, as a mapping (stored runs lack new keys)."""
    if isinstance(pipeline, BaseModel):
        return pipeline.model_dump()
    return pipeline or {}


def active_stages(pipeline: Any = None, *, mode: Mode | None = None) -> list[str]:
    """The LLM stages a document passes through under these pipeline settings, in order.

    `pipeline` is a `PipelineSettings` or the JSON a run stored; missing switches count as
    on and a missing mode as `pipeline`, the defaults. `mode` overrides the settings' mode
    (each graph factory builds one mode whatever the settings say).
    """
    switches = _switches(pipeline)
    mode = mode or switches.get("mode") or "pipeline"
    return [
        spec.name
        for spec in STAGES
        if mode in spec.modes and (spec.switch is None or switches.get(spec.switch, True))
    ]


def mode_stages(mode: Mode) -> list[str]:
    """Every LLM stage of `mode` with all its switches on."""
    return active_stages(mode=mode)


def next_stage(name: str, pipeline: Any = None, *, mode: Mode | None = None) -> str:
    """Where a document goes once `name` has passed: the next active stage, else `emit`."""
    stages = active_stages(pipeline, mode=mode)
    index = stages.index(name)
    return stages[index + 1] if index + 1 < len(stages) else "emit"


def prompt_versions() -> dict[str, str]:
    """`{stage: "name@version"}` of every registered stage's prompt file."""
    from gem_graph.prompts import load_prompt

    return {spec.name: load_prompt(spec.prompt).key for spec in STAGES}
