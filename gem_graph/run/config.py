"""Loading settings for a run, saying where each value came from, and the fingerprint of
everything that changes a run's outputs.

Sources, each over the next: arguments, command-line flags, `GEM_*` environment variables,
a TOML file shaped like `Settings` (`[model]`, `[attempts]`, `[sandbox]`, `[pipeline]`,
`[run]`), the command line's own defaults, the field defaults. The API key is never read
from a file, a flag or a `GEM_*` variable: only from `OPENAI_API_KEY`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gem_graph import __version__
from gem_graph.pipeline import BY_NAME, LLM_STAGES, prompt_versions
from gem_graph.settings import SECTIONS, Settings, environment_values

DEFAULT = "default"

# Model options that change what the model answers; transport options (base_url, timeouts,
# retries) do not, so changing them never blocks a resume.
_OUTPUT_MODEL_FIELDS = ("name", "temperature", "max_tokens", "structured_method")
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token")


class ConfigError(Exception):
    """A settings file or override that cannot be used; reported as one line, exit code 2."""


@dataclass(frozen=True)
class LoadedSettings:
    """Effective settings and, per dotted field name, where its value came from."""

    settings: Settings
    sources: dict[str, str]

    def rows(self) -> Iterator[tuple[str, Any, str]]:
        """`(name, value, source)` for every field, in declaration order."""
        for name, value in leaves(settings_snapshot(self.settings)):
            yield name, value, self.sources.get(name, DEFAULT)


def load_settings(
    *,
    toml: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    arguments: Mapping[str, Any] | None = None,
    command_defaults: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Settings from every source in priority order, with each value's provenance.

    All mappings are shaped like `Settings` (`{"sandbox": {"tier": "strict"}}`);
    `flag_names` maps dotted field names to the flag that sets them, for provenance.
    """
    file_data = load_settings_file(toml) if toml is not None else {}
    environment = _environment()
    names = dict(flag_names or {})
    layers: list[tuple[Mapping[str, Any], Any]] = [
        (command_defaults or {}, lambda name: "command-line default"),
        (file_data, lambda name: f"file {toml}"),
        (environment, _environment_name),
        (flags or {}, lambda name: f"flag {names.get(name, '?')}"),
        (arguments or {}, lambda name: "argument"),
    ]
    merged: dict[str, Any] = {}
    for values, _ in layers:
        merged = deep_merge(merged, values)
    settings = _validated(merged)
    sources: dict[str, str] = {}
    for name, _value in leaves(settings.model_dump(mode="json")):
        for values, label in reversed(layers):
            if _has(values, name):
                sources[name] = label(name)
                break
        else:
            if name == "model.base_url" and os.environ.get("OPENAI_BASE_URL"):
                sources[name] = "env OPENAI_BASE_URL"
    return LoadedSettings(settings, sources)


def _environment() -> dict[str, Any]:
    try:
        return environment_values()
    except SettingsError as exc:
        raise ConfigError(f"invalid GEM_* environment variable: {exc}") from None


def _environment_name(name: str) -> str:
    variable = "GEM_" + name.replace(".", "__").upper()
    if name == "model.name" and variable not in {key.upper() for key in os.environ}:
        variable = "GEM_MODEL"
    return f"env {variable}"


def _has(values: Mapping[str, Any], name: str) -> bool:
    node: Any = values
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(dotted name, value)` of every non-mapping value of a nested mapping."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _validated(data: Mapping[str, Any]) -> Settings:
    try:
        # The environment is read again under these values; they already include it.
        return Settings(**data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        ]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
    except SettingsError as exc:
        raise ConfigError(f"invalid GEM_* environment variable: {exc}") from None


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
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"settings file {source}: unknown section(s) {sorted(unknown)}; expected "
            f"{list(SECTIONS)}"
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
