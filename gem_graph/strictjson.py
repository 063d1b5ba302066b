"""Strict JSON for untrusted input: one unambiguous reading of a text, or a clear error.

`json.loads` accepts things another parser reads differently or not at all: duplicate
object keys (the last one silently wins), `NaN`/`Infinity`, numbers that overflow to an
infinite float, nesting deep enough to exhaust the stack, and lone surrogates such as
`"\\ud800"`. Records, tool arguments, written tool outputs and environment files come from
outside, so they are parsed here instead.

Policy: text is a sequence of Unicode scalar values. Bytes must be valid UTF-8 (no BOM
handling, no other encodings); lone surrogates, raw or escaped, in keys or values, are an
error. Nothing is ever silently replaced or dropped.

`dumps` re-serialises values whose origin is untrusted (e.g. what tool code returned): it
accepts only exact `dict`/`list`/`str`/`int`/`float`/`bool`/`None`, never subclasses, so no
foreign `__str__`, `__iter__` or `__eq__` runs while the value is encoded.

Standard library only and no package-relative imports: the sandbox worker loads this
file by path under `python -S`, where `gem_graph` cannot be imported.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "StrictJSONError",
    "check_plain",
    "dumps",
    "loads",
]

DEFAULT_MAX_BYTES = 16 * 2**20
"""Largest accepted input (UTF-8 bytes) of `loads`, and most values `dumps` will walk."""
DEFAULT_MAX_DEPTH = 64
"""Deepest accepted nesting of arrays and objects; `[]` has depth 1, a scalar 0."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SHOWN = 60


class StrictJSONError(ValueError):
    """Input that is not strict JSON, or a value that is not plain JSON data.

    `kind` says which rule failed: `syntax`, `size`, `utf8`, `surrogate`, `duplicate_key`,
    `constant` (NaN/Infinity), `number`, `depth`, `type`. Only `syntax` means "not JSON at
    all"; every other kind is JSON that `json.loads` would have read some other way.
    """

    def __init__(self, message: str, kind: str = "syntax") -> None:
        super().__init__(message)
        self.kind = kind


def loads(
    text: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse one JSON text strictly; raises `StrictJSONError` for anything ambiguous.

    Returns plain `dict`/`list`/`str`/`int`/`float`/`bool`/`None` values. Integers of any
    size are kept exactly (up to Python's digit limit for int conversion).
    """
    if isinstance(text, bytes | bytearray):
        if len(text) > max_bytes:
            raise StrictJSONError(f"input is {len(text)} bytes, over the {max_bytes} limit", "size")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJSONError(
                f"invalid UTF-8 at byte {exc.start}: {exc.reason}", "utf8"
            ) from None
    elif not isinstance(text, str):
        raise StrictJSONError(f"can only parse str or bytes, got {type(text).__name__}", "type")
    else:
        _check_text_size(text, max_bytes)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"nesting deeper than {max_depth} levels", "depth") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not valid JSON: {exc}", "syntax") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise StrictJSONError(f"unreadable number: {_clip(str(exc))}", "number") from None
    # The walk costs more than the parse, so it runs only when the text could break a rule.
    strings = _SURROGATE.search(text) is not None or _ESCAPED_SURROGATE.search(text) is not None
    if strings or text.count("[") + text.count("{") > max_depth:
        _walk_parsed(value, max_depth, strings=strings)
    return value


def dumps(
    value: Any,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_BYTES,
    sort_keys: bool = False,
    ensure_ascii: bool = False,
) -> str:
    """Compact JSON of a plain JSON value; raises `StrictJSONError` for anything else.

    Exact types only (`type(x) is dict`, ...), string keys, finite floats, no lone
    surrogates, at most `max_depth` levels and `max_items` values in all (so shared
    sub-lists cannot make the walk exponential). Key order is kept unless `sort_keys`.
    """
    check_plain(value, max_depth=max_depth, max_items=max_items)
    try:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            allow_nan=False,
            sort_keys=sort_keys,
            separators=(",", ":"),
        )
    except ValueError as exc:  # an integer over Python's digit limit for str()
        raise StrictJSONError(f"cannot serialise a number: {_clip(str(exc))}", "number") from None


def check_plain(
    value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, max_items: int | None = DEFAULT_MAX_BYTES
) -> None:
    """Raise `StrictJSONError` unless `value` is plain JSON data within the limits.

    Iterative, so neither deep nor cyclic values can exhaust the stack (a cycle ends at
    `max_depth`).
    """
    _walk(value, max_depth, max_items)


# ---- internals ----------------------------------------------------------------------------


def _check_text_size(text: str, max_bytes: int) -> None:
    """`text` must encode to at most `max_bytes` UTF-8 bytes (surrogates counted as 3)."""
    if len(text) > max_bytes or (
        len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise StrictJSONError(f"input is over the {max_bytes} byte limit", "size")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate object key {_clip(repr(key))}", "duplicate_key")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number", "constant")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise StrictJSONError(
            f"number {_clip(literal)} is out of range for a finite float", "number"
        )
    return number


def _walk_parsed(value: Any, max_depth: int, *, strings: bool) -> None:
    """Depth (and, with `strings`, lone surrogates) of a value `json.loads` built."""
    if type(value) is str:
        if strings:
            _check_string(value, "string")
        return
    if type(value) is not dict and type(value) is not list:
        return
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if depth >= max_depth:
            raise StrictJSONError(f"nesting deeper than {max_depth} levels", "depth")
        if type(current) is dict:
            if strings:
                for key in current:
                    _check_string(key, "object key")
            children = current.values()
        else:
            children = current
        for item in children:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif strings and kind is str:
                _check_string(item, "string")


def _walk(value: Any, max_depth: int, max_items: int | None) -> None:
    """Check that a built value is plain JSON data: exact types, depth, strings, size."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    items = 0
    while stack:
        current, depth = stack.pop()
        items += 1
        if max_items is not None and items > max_items:
            raise StrictJSONError(f"more than {max_items} values", "size")
        kind = type(current)
        if kind is str:
            _check_string(current, "string")
        elif kind is dict or kind is list:
            if depth >= max_depth:
                raise StrictJSONError(f"nesting deeper than {max_depth} levels", "depth")
            if kind is list:
                stack.extend((item, depth + 1) for item in current)
                continue
            for key, item in current.items():
                if type(key) is not str:
                    raise StrictJSONError(
                        f"object keys must be str, got {type(key).__name__}", "type"
                    )
                _check_string(key, "object key")
                stack.append((item, depth + 1))
        elif kind is float:
            if not math.isfinite(current):
                raise StrictJSONError(f"{current!r} is not a JSON number", "constant")
        elif kind is not int and kind is not bool and current is not None:
            raise StrictJSONError(f"{kind.__name__} is not a plain JSON value", "type")


def _check_string(text: str, what: str) -> None:
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise StrictJSONError(
                f"{what} holds a lone surrogate U+{ord(found.group()):04X} at index "
                f"{found.start()}",
                "surrogate",
            )


def _clip(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
