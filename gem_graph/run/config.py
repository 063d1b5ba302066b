"""Settings for a run: a TOML file shaped like `Settings`, command-line overrides on top,
and the fingerprint of everything that changes a run's outputs.

The TOML file has the sections of `Settings` (`[model]`, `[attempts]`, `[sandbox]`,
`[pipeline]`) and optionally a `[run]` section for runner options (`concurrency`,
`segment_chars`, `requests_per_second`, …). The API key is never read from a file or a
flag: only from `OPENAI_API_KEY`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from gem_graph import __version__
from gem_graph.pipeline import BY_NAME, LLM_STAGES, prompt_versions
from gem_graph.settings import Settings

SETTINGS_SECTIONS = ("model", "attempts", "sandbox", "pipeline")
RUN_SECTION = "run"

# Model options that change what the model answers; transport options (base_url, timeouts,
# retries) do not, so changing them never blocks a resume.
_OUTPUT_MODEL_FIELDS = ("name", "temperature", "max_tokens", "structured_method")
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token")


class ConfigError(Exception):
    """A settings file or override that cannot be used; reported as one line, exit code 2."""


def load_settings_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML settings file into a dict (not yet validated)."""
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"settings file {source} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {source} is not valid TOML: {exc}") from None
    unknown = set(data) - {*SETTINGS_SECTIONS, RUN_SECTION}
    if unknown:
        raise ConfigError(
            f"settings file {source}: unknown section(s) {sorted(unknown)}; expected "
            f"{[*SETTINGS_SECTIONS, RUN_SECTION]}"
        )
    secret = _find_secret(data)
    if secret:
        raise ConfigError(
            f"settings file {source}: {secret!r} looks like a secret; the API key is read "
            "only from the OPENAI_API_KEY environment variable"
        )
    return data


def _find_secret(data: Mapping[str, Any], prefix: str = "") -> str | None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if any(word in key.lower() for word in _SECRET_WORDS) and "tokens" not in key.lower():
            return name
        if isinstance(value, Mapping):
            found = _find_secret(value, f"{name}.")
            if found:
                return found
    return None


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, merging nested dicts key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_settings(
    file_data: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Validate file data with overrides on top (both shaped like `Settings`)."""
    data = deep_merge(file_data or {}, overrides or {})
    data = {k: v for k, v in data.items() if k in SETTINGS_SECTIONS}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        ]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None


def parse_attempts(values: Iterable[str]) -> dict[str, int]:
    """`["ground=4", "extract=2"]` → `{"ground": 4, "extract": 2}`, keyed by the stages'
    `Settings.attempts` fields (from the stage registry)."""
    attempts: dict[str, int] = {}
    for value in values:
        stage, sep, number = value.partition("=")
        spec = BY_NAME.get(stage.strip())
        if not sep or spec is None:
            raise ConfigError(
                f"--attempts {value!r}: expected STAGE=N with STAGE one of {list(LLM_STAGES)}"
            )
        try:
            attempts[spec.attempts] = int(number)
        except ValueError:
            raise ConfigError(f"--attempts {value!r}: {number!r} is not a whole number") from None
    return attempts


def redact_url(url: str | None) -> str | None:
    """A URL without any `user:password@` part."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def settings_snapshot(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, safe to store and print (no credentials in URLs)."""
    data = settings.model_dump(mode="json")
    data["model"]["base_url"] = redact_url(data["model"].get("base_url"))
    return data


def output_settings(settings: Settings, *, segment_chars: int) -> dict[str, Any]:
    """Everything that changes what a run produces for a given input.

    Model name and sampling, structured-output method, attempt caps, pipeline switches,
    prompt versions and the segment size. Not transport options or sandbox limits.
    """
    model = settings.model.model_dump(mode="json")
    return {
        "model": {key: model[key] for key in _OUTPUT_MODEL_FIELDS},
        "attempts": settings.attempts.model_dump(mode="json"),
        "pipeline": settings.pipeline.model_dump(mode="json"),
        "prompts": prompt_versions(),
        "segment_chars": segment_chars,
    }


def fingerprint(values: Mapping[str, Any]) -> str:
    """sha256 of a canonical JSON rendering."""
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable `key: old → new` lines between two nested dicts."""
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines.extend(differences(a, b, f"{name}."))
        elif a != b:
            lines.append(f"{name}: {json.dumps(a)} → {json.dumps(b)}")
    return lines


def versions() -> dict[str, Any]:
    """Package and prompt versions, recorded with every run."""
    return {"package": __version__, "prompts": prompt_versions()}
