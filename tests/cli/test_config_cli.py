"""`gem-graph config show` and the flags derived from the settings fields."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from gem_graph.cli import build_parser, main
from gem_graph.cli.flags import field_info, flag_values
from gem_graph.cli.settings_flags import ALL_FLAGS, settings_from_args
from gem_graph.cli.train import TRAIN_FLAGS, add_arguments
from gem_graph.settings import RunSettings, Settings
from gem_graph.train import TrainConfig


@pytest.fixture(autouse=True)
def no_gem_environment(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("GEM_"):
            monkeypatch.delenv(name)


def test_config_show_says_where_each_value_came_from(tmp_path, monkeypatch, capsys):
    toml = tmp_path / "gem.toml"
    toml.write_text('[model]\nname = "file-model"\n[run]\nconcurrency = 2\n', encoding="utf-8")
    monkeypatch.setenv("GEM_SANDBOX__TIER", "strict")
    flags = ["--concurrency", "6", "--attempts", "ground=5", "--no-judge"]
    code = main(["config", "show", "--json", "--settings", str(toml), *flags])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["model.name"] == {"value": "file-model", "source": f"file {toml}"}
    assert shown["run.concurrency"] == {"value": 6, "source": "flag --concurrency"}
    assert shown["attempts.ground"] == {"value": 5, "source": "flag --attempts"}
    assert shown["pipeline.judge"] == {"value": False, "source": "flag --no-judge"}
    assert shown["sandbox.tier"] == {"value": "strict", "source": "env GEM_SANDBOX__TIER"}
    assert shown["run.max_segments"] == {"value": 25, "source": "default"}
    assert set(shown) >= {"model.timeout_s", "sandbox.memory_mb", "run.cache"}


def test_config_show_prints_a_table_and_refuses_bad_values(capsys):
    assert main(["config", "show", "--tier", "strict"]) == 0
    out = capsys.readouterr().out
    assert "sandbox.tier" in out and "flag --tier" in out
    assert main(["config", "show", "--concurrency", "0"]) == 2
    assert "run.concurrency" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag", [f for f in ALL_FLAGS if not f.is_switch], ids=lambda flag: flag.option
)
def test_every_run_flag_reaches_its_field(flag):
    info = field_info(Settings, flag.field)
    samples = {"model.structured_method": "json_text", "model.http_client": "httpx"}
    value = samples.get(flag.field) or {
        "sandbox.tier": "none",
        "pipeline.mode": "synthesizer",
        "run.cache": "/tmp/cache.sqlite",
        "run.engine": "ray",
    }.get(flag.field)
    if value is None:
        numeric = "int" in str(info.annotation) or "float" in str(info.annotation)
        value = "300" if numeric else "x"
    args = build_parser().parse_args(["run", "in.jsonl", "-o", "out", flag.option, value])
    settings = settings_from_args(args).settings
    section, name = flag.field.split(".")
    assert str(getattr(getattr(settings, section), name)) in {value, f"{value}.0"}


def test_flag_help_shows_the_field_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    default = RunSettings.model_fields["max_segments"].default
    assert "Documents in flight (default: 8)" in text
    assert RunSettings.model_fields["concurrency"].default == 8
    assert default == 25  # not a flag: set in [run] or GEM_RUN__MAX_SEGMENTS


def test_training_flags_are_the_training_config():
    covered = {flag.field for flag in TRAIN_FLAGS}
    assert covered == set(TrainConfig.model_fields) - {"lora_target_modules"}
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["data", "-o", "out", "--base-model", "m", "--full", "--epochs", "3"])
    config = TrainConfig.model_validate(flag_values(args, TRAIN_FLAGS))
    assert (config.lora, config.epochs, config.seed) == (False, 3.0, 42)
