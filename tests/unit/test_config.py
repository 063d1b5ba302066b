"""Settings sources and their order, provenance, and the output-settings fingerprint."""

from __future__ import annotations

from typing import Any

import pytest

from gem_graph.run.config import (
    ConfigError,
    differences,
    fingerprint,
    load_settings,
    load_settings_file,
    output_settings,
    parse_attempts,
    redact_url,
    settings_snapshot,
)


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def build_settings(values: dict[str, Any]) -> Any:
    return load_settings(arguments=values).settings


@pytest.fixture(autouse=True)
def no_gem_environment(monkeypatch):
    """The developer's own GEM_* variables must not leak into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("GEM_") or name == "OPENAI_BASE_URL":
            monkeypatch.delenv(name)


def test_a_settings_file_with_flag_overrides_on_top(tmp_path):
    loaded = load_settings(
        toml=write(
            tmp_path,
            '[model]\nname = "m1"\ntemperature = 0.3\n[attempts]\nground = 5\n'
            "[pipeline]\njudge = false\n[run]\nconcurrency = 4\n",
        ),
        flags={"model": {"temperature": 0.9}, "attempts": {"extract": 1}},
    )
    settings = loaded.settings
    assert settings.model.name == "m1"
    assert settings.model.temperature == 0.9
    assert settings.attempts.ground == 5 and settings.attempts.extract == 1
    assert settings.pipeline.judge is False
    assert settings.run.concurrency == 4


def test_sources_in_order_arguments_flags_environment_file(tmp_path, monkeypatch):
    toml = write(
        tmp_path,
        '[model]\nname = "from-file"\ntemperature = 0.1\nmax_tokens = 100\n'
        '[sandbox]\ntier = "none"\n[run]\nconcurrency = 2\nlimit = 7\n',
    )
    monkeypatch.setenv("GEM_MODEL__TEMPERATURE", "0.2")
    monkeypatch.setenv("GEM_RUN__CONCURRENCY", "3")
    monkeypatch.setenv("GEM_RUN__LIMIT", "9")
    monkeypatch.setenv("GEM_SANDBOX__TIER", "strict")
    loaded = load_settings(
        toml=toml,
        flags={"run": {"concurrency": 5, "limit": 11}},
        flag_names={"run.concurrency": "--concurrency", "run.limit": "--limit"},
        arguments={"run": {"limit": 13}},
        command_defaults={"model": {"http_client": "aiohttp", "max_tokens": 50}},
    )
    settings = loaded.settings
    assert settings.model.name == "from-file"
    assert settings.model.max_tokens == 100  # the file beats the command line's default
    assert settings.model.http_client == "aiohttp"
    assert settings.model.temperature == 0.2  # the environment beats the file
    assert settings.sandbox.tier == "strict"
    assert settings.run.concurrency == 5  # a flag beats the environment
    assert settings.run.limit == 13  # an argument beats a flag
    sources = loaded.sources
    assert sources["model.name"] == f"file {toml}"
    assert sources["model.http_client"] == "command-line default"
    assert sources["model.temperature"] == "env GEM_MODEL__TEMPERATURE"
    assert sources["run.concurrency"] == "flag --concurrency"
    assert sources["run.limit"] == "argument"
    rows = {name: (value, source) for name, value, source in loaded.rows()}
    assert rows["attempts.ground"] == (3, "default")
    assert rows["sandbox.tier"] == ("strict", "env GEM_SANDBOX__TIER")


def test_gem_model_is_short_for_the_model_name(monkeypatch):
    from gem_graph.settings import Settings

    monkeypatch.setenv("GEM_MODEL", "qwen3-8b")
    monkeypatch.setenv("GEM_MODEL__TEMPERATURE", "0.4")
    assert (Settings().model.name, Settings().model.temperature) == ("qwen3-8b", 0.4)
    loaded = load_settings()
    assert loaded.settings.model.name == "qwen3-8b"
    assert loaded.sources["model.name"] == "env GEM_MODEL"
    # Arguments to `Settings(...)` still win over the environment.
    assert Settings(model={"name": "explicit"}).model.name == "explicit"


def test_a_bad_environment_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("GEM_RUN__CONCURRENCY", "0")
    with pytest.raises(ConfigError, match=r"run\.concurrency"):
        load_settings()
    monkeypatch.setenv("GEM_RUN__CONCURRENCY", "2")
    monkeypatch.setenv("GEM_SANDBOX", "{not json")
    with pytest.raises(ConfigError, match="GEM_"):
        load_settings()


def test_updated_validates_the_new_values():
    from gem_graph.settings import Settings

    settings = Settings().updated(run={"concurrency": 3}, sandbox={"tier": "strict"})
    assert (settings.run.concurrency, settings.sandbox.tier) == (3, "strict")
    with pytest.raises(ValueError, match="concurrency"):
        settings.updated(run={"concurrency": 0})
    with pytest.raises(ValueError, match="unknown settings section"):
        settings.updated(runs={"concurrency": 2})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model\nname = 1", "not valid TOML"),
        ("[modle]\nname = 'x'", "unknown section"),
        ("[model]\napi_key = 'sk-123'", "OPENAI_API_KEY"),
    ],
)
def test_bad_settings_files_are_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings_file(write(tmp_path, text))


def test_invalid_values_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"attempts\.ground"):
        build_settings({"attempts": {"ground": 0}})
    with pytest.raises(ConfigError, match=r"model\.temprature"):
        build_settings({"model": {"temprature": 0.1}})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings_file(tmp_path / "missing.toml")


def test_attempt_flags():
    assert parse_attempts(["ground=4", "extract=2"]) == {"ground": 4, "extract": 2}
    with pytest.raises(ConfigError, match="STAGE=N"):
        parse_attempts(["grond=4"])
    with pytest.raises(ConfigError, match="not a whole number"):
        parse_attempts(["ground=many"])


def test_the_fingerprint_covers_what_changes_outputs_and_not_transport():
    base = build_settings({"model": {"name": "m", "base_url": "http://a/v1"}})
    same = build_settings(
        {
            "model": {
                "name": "m",
                "base_url": "http://b/v1",
                "timeout_s": 3,
                "max_transport_retries": 0,
            },
            "sandbox": {"memory_mb": 256},
        }
    )
    fp = fingerprint(output_settings(base, segment_chars=8000))
    assert fingerprint(output_settings(same, segment_chars=8000)) == fp
    changed = [
        build_settings({"model": {"name": "m2"}}),
        build_settings({"model": {"name": "m", "temperature": 0.1}}),
        build_settings({"model": {"name": "m", "structured_method": "json_text"}}),
        build_settings({"model": {"name": "m"}, "attempts": {"ground": 9}}),
        build_settings({"model": {"name": "m"}, "pipeline": {"refine": False}}),
    ]
    for settings in changed:
        assert fingerprint(output_settings(settings, segment_chars=8000)) != fp
    assert fingerprint(output_settings(base, segment_chars=4000)) != fp
    outputs = output_settings(base, segment_chars=8000)
    assert outputs["prompts"]["ground"].startswith("ground@")
    lines = differences(outputs, output_settings(changed[1], segment_chars=8000))
    assert lines == ["model.temperature: 0.7 → 0.1"]


def test_stored_settings_carry_no_credentials():
    settings = build_settings({"model": {"base_url": "https://user:s3cret@host:8443/v1"}})
    snapshot = settings_snapshot(settings)
    assert snapshot["model"]["base_url"] == "https://host:8443/v1"
    assert "s3cret" not in str(snapshot)
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
