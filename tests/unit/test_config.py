"""Settings files, flag overrides, and the output-settings fingerprint."""

from __future__ import annotations

import pytest

from gem_graph.run.config import (
    ConfigError,
    build_settings,
    differences,
    fingerprint,
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


def test_a_settings_file_with_flag_overrides_on_top(tmp_path):
    data = load_settings_file(
        write(
            tmp_path,
            '[model]\nname = "m1"\ntemperature = 0.3\n[attempts]\nground = 5\n'
            "[pipeline]\njudge = false\n[run]\nconcurrency = 4\n",
        )
    )
    settings = build_settings(data, {"model": {"temperature": 0.9}, "attempts": {"extract": 1}})
    assert settings.model.name == "m1"
    assert settings.model.temperature == 0.9
    assert settings.attempts.ground == 5 and settings.attempts.extract == 1
    assert settings.pipeline.judge is False
    assert data["run"] == {"concurrency": 4}


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
