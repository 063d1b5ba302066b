"""Command-line flags derived from pydantic fields: type, choices, default and help come
from the field, so no flag restates what the settings already say.

A `Flag` binds an option to a dotted field name (`--tier` → `sandbox.tier`). Flags parse
to `None` when absent, so only what the user typed overrides the other sources.
"""

from __future__ import annotations

import argparse
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

_SWITCH = object()
_PLAIN_TYPES = (int, float, str, Path)


@dataclass(frozen=True)
class Flag:
    """One option bound to one field.

    `sets` makes it a switch that stores that value (`--no-refine` sets `False`); `help`
    replaces the field's description; `default` replaces how the field's default reads,
    where the command line's own default differs; `aliases` are extra option strings.
    """

    option: str
    field: str
    sets: Any = _SWITCH
    help: str | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    required: bool = False
    default: str | None = None

    @property
    def is_switch(self) -> bool:
        return self.sets is not _SWITCH

    @property
    def dest(self) -> str:
        return "flag:" + self.field


def field_info(model: type[BaseModel], name: str) -> FieldInfo:
    """The field a dotted name points at, through nested models."""
    current: type[BaseModel] = model
    parts = name.split(".")
    for index, part in enumerate(parts):
        if part not in current.model_fields:
            raise ValueError(f"{model.__name__} has no field {name!r}")
        info = current.model_fields[part]
        if index == len(parts) - 1:
            return info
        annotation = info.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise ValueError(f"{name!r}: {part!r} is not a section of {model.__name__}")
        current = annotation
    raise ValueError(f"empty field name for {model.__name__}")


def default_text(info: FieldInfo) -> str:
    """How a field's default reads in help text."""
    if info.default is PydanticUndefined:
        return "required" if info.default_factory is None else "from the environment"
    if info.default is None:
        return "unset"
    if isinstance(info.default, bool):
        return "yes" if info.default else "no"
    return str(info.default)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    model: type[BaseModel],
    flags: Iterable[Flag],
) -> None:
    """Add each flag to `parser`, typed, constrained and documented from its field."""
    for flag in flags:
        info = field_info(model, flag.field)
        names = (flag.option, *flag.aliases)
        description = _first_sentence(flag.help or info.description or "")
        if flag.is_switch:
            parser.add_argument(
                *names,
                dest=flag.dest,
                action="store_const",
                const=flag.sets,
                default=None,
                help=_escape(description),
            )
            continue
        kind, choices = _argument_type(info.annotation, flag)
        default = flag.default or default_text(info)
        if default not in ("unset", "required"):
            description = f"{description} (default: {default})".lstrip()
        parser.add_argument(
            *names,
            dest=flag.dest,
            type=kind,
            choices=choices,
            default=None,
            required=flag.required,
            metavar=flag.metavar or (None if choices else flag.field.rsplit(".", 1)[-1].upper()),
            help=_escape(description),
        )


def flag_values(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[str, Any]:
    """The flags the user gave, shaped like the model (`{"sandbox": {"tier": "strict"}}`)."""
    given = {flag.field: getattr(args, flag.dest, None) for flag in flags}
    return nested({name: value for name, value in given.items() if value is not None})


def flag_names(flags: Iterable[Flag]) -> dict[str, str]:
    """Dotted field name → the option that sets it (the first one, for provenance)."""
    names: dict[str, str] = {}
    for flag in flags:
        names.setdefault(flag.field, flag.option)
    return names


def _argument_type(annotation: Any, flag: Flag) -> tuple[Any, Sequence[Any] | None]:
    options = [arg for arg in _union_members(annotation) if arg is not type(None)]
    if len(options) == 1 and get_origin(options[0]) is Literal:
        return str, get_args(options[0])
    plain = [arg for arg in options if arg in _PLAIN_TYPES]
    if len(plain) == 1:
        return plain[0], None
    raise TypeError(f"flag {flag.option}: cannot derive an argument type from {annotation!r}")


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _first_sentence(text: str) -> str:
    """The help line: a field description's first sentence, without its full stop."""
    flat = re.sub(r"\s+", " ", text.strip())
    return re.split(r"(?<=[a-z0-9)`])\. ", flat, maxsplit=1)[0].removesuffix(".")


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` → `{"a": {"b": 1}}`."""
    result: dict[str, Any] = {}
    for name, value in values.items():
        node = result
        *sections, leaf = name.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return result
