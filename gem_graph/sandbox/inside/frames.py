"""Frames between processes: a 4-byte big-endian length, then UTF-8 JSON. Never pickle."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_HEADER = struct.Struct(">I")
_dumps = json.dumps
_loads = json.loads
_PLAIN_DEPTH = 100
"""How deeply nested a tool's return value may be (deeper is not plain data)."""


class _ProtocolViolation(Exception):
    """The tool child sent something that is not a well-formed frame."""


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, cap: int | None = None) -> Any:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    size = _HEADER.unpack(header)[0]
    if cap is not None and size > cap:
        raise _ProtocolViolation(f"frame of {size} bytes exceeds {cap}")
    body = _read_exact(fd, size)
    return None if body is None else _loads(body)


def _write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _send(fd: int, obj: Any) -> None:
    _write_frame(fd, _dumps(obj).encode())


def _safe_text(value: Any, limit: int = 4000) -> str:
    """Diagnostic text (errors, tracebacks, stdout) as valid Unicode, bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = text[:limit] + ("…" if len(text) > limit else "")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
