"""The stage registry, and the lists that read it: fingerprint, cache namespace, --attempts."""

from __future__ import annotations

import dataclasses

import pytest

import gem_graph.prompts
from gem_graph.cli import build_parser
from gem_graph.cli.settings_flags import settings_from_args
from gem_graph.pipeline import (
    LLM_STAGES,
    STAGES,
    active_stages,
    mode_stages,
    next_stage,
    prompt_versions,
)
from gem_graph.prompts import load_prompt
from gem_graph.run.config import fingerprint, output_settings
from gem_graph.run.session import cache_namespace
from gem_graph.settings import AttemptSettings, PipelineSettings, Settings


@pytest.mark.parametrize("spec", STAGES, ids=lambda spec: spec.name)
def test_every_stage_has_its_attempts_setting_and_its_prompt(spec):
    assert spec.attempts in AttemptSettings.model_fields
    prompt = load_prompt(spec.prompt)
    assert prompt.name == spec.prompt
    # A structured stage shows the model its schema; the synthesizer answers tagged text.
    assert ("output_schema" in prompt.variables()) == (spec.schema is not None)


def test_every_attempts_setting_and_prompt_file_belongs_to_a_stage():
    assert set(AttemptSettings.model_fields) == {spec.attempts for spec in STAGES}
    files = {path.stem for path in gem_graph.prompts.data_dir("prompts").glob("*.md")}
    not_stages = {"README", "eval_user"}  # eval_user: the user simulator of `gem-graph eval`
    assert files - not_stages == {spec.prompt for spec in STAGES}
    assert len(set(LLM_STAGES)) == len(STAGES)


def _bump(monkeypatch, name):
    """Load prompt `name` one version up, as if its file had been bumped."""
    real = gem_graph.prompts.load_prompt

    def bumped(prompt):
        loaded = real(prompt)
        return dataclasses.replace(loaded, version=loaded.version + 1) if prompt == name else loaded

    monkeypatch.setattr(gem_graph.prompts, "load_prompt", bumped)


@pytest.mark.parametrize("spec", STAGES, ids=lambda spec: spec.name)
def test_a_prompt_version_bump_changes_the_fingerprint_and_the_cache_namespace(monkeypatch, spec):
    settings = Settings()
    before = fingerprint(output_settings(settings, segment_chars=8000))
    namespace = cache_namespace()
    _bump(monkeypatch, spec.prompt)
    assert prompt_versions()[spec.name].endswith(f"@{load_prompt(spec.prompt).version + 1}")
    assert fingerprint(output_settings(settings, segment_chars=8000)) != before
    assert cache_namespace() != namespace


@pytest.mark.parametrize("spec", STAGES, ids=lambda spec: spec.name)
def test_attempts_flags_reach_every_stage_the_way_the_cli_reads_them(spec):
    args = build_parser().parse_args(
        ["run", "corpus.jsonl", "-o", "runs/x", "--attempts", f"{spec.name}=4"]
    )
    settings = settings_from_args(args).settings
    assert getattr(settings.attempts, spec.attempts) == 4


def test_the_synthesizer_attempts_flag_is_accepted():
    args = build_parser().parse_args(
        ["run", "corpus.jsonl", "-o", "runs/x", "--attempts", "synthesizer=4"]
    )
    assert settings_from_args(args).settings.attempts.synthesizer == 4


def test_the_stages_each_mode_and_switch_runs():
    everything = ["filter", "extract", "implement", "ground", "refine", "judge"]
    assert mode_stages("pipeline") == everything
    assert mode_stages("synthesizer") == ["synthesizer", "judge"]
    off = PipelineSettings(execute=False, refine=False, judge=False)
    assert active_stages(off) == ["filter", "extract", "ground"]
    assert active_stages({"mode": "synthesizer", "judge": False}) == ["synthesizer"]
    assert active_stages(off, mode="synthesizer") == ["synthesizer"]
    assert next_stage("extract", off) == "ground"
    assert next_stage("extract") == "implement"
    assert next_stage("ground", {"refine": False}) == "judge"
    assert next_stage("synthesizer", mode="synthesizer") == "judge"
    assert next_stage("judge") == "emit"
