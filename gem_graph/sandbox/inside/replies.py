"""What the monitor takes from the tool process, re-built from plain values, and its cells."""

from __future__ import annotations

import base64
import os
import signal
from typing import Any

from .frames import _ProtocolViolation, _safe_text

_CALL_STATUSES = frozenset({"ok", "tool_error", "error", "memory", "output_limit"})
"""What a tool process may say of a call it answered (crashes are the monitor's to see)."""


def _encode_cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    return value


def _decode_params(params: Any) -> Any:
    if isinstance(params, dict):
        return {str(k): _decode_param(v) for k, v in params.items()}
    if isinstance(params, list):
        return [_decode_param(v) for v in params]
    raise _ProtocolViolation("SQL parameters are neither a list nor an object")


def _decode_param(value: Any) -> Any:
    if isinstance(value, dict):
        encoded = value.get("$b")
        if not isinstance(encoded, str):
            raise _ProtocolViolation("bad blob parameter")
        return base64.b64decode(encoded)
    if isinstance(value, list):
        raise TypeError("a list cannot be an SQL parameter")
    return value


def _clean_listing(functions: Any) -> dict[str, Any]:
    if not isinstance(functions, dict):
        raise _ProtocolViolation("load reply without functions")
    clean: dict[str, Any] = {}
    for name, spec in functions.items():
        if not isinstance(spec, dict):
            raise _ProtocolViolation("bad function description")
        params, required = spec.get("parameters"), spec.get("required")
        if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
            raise _ProtocolViolation("bad parameter list")
        if not (isinstance(required, list) and all(isinstance(p, str) for p in required)):
            raise _ProtocolViolation("bad required list")
        clean[_safe_text(name, 200)] = {
            "parameters": [_safe_text(p, 200) for p in params],
            "required": [_safe_text(p, 200) for p in required],
            "accepts_var_kwargs": spec.get("accepts_var_kwargs") is True,
        }
    return clean


def _clean_failure(reply: dict[str, Any]) -> dict[str, Any]:
    status = reply.get("status")
    if status not in (*_CALL_STATUSES, "crashed"):
        raise _ProtocolViolation(f"invalid status {status!r}")
    out = {
        "ok": False,
        "status": status,
        "result": None,
        "error_type": None if reply.get("error_type") is None
        else _safe_text(reply.get("error_type"), 200),
        "error": _safe_text(reply.get("error") or ""),
        "traceback": None if reply.get("traceback") is None else _safe_text(reply.get("traceback")),
        "stdout": _safe_text(reply.get("stdout") or ""),
    }  # fmt: skip
    if "wait_status" in reply:
        out["wait_status"] = int(reply["wait_status"])
    return out


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the tool process was killed by signal {name}"
    return f"the tool process exited with code {os.WEXITSTATUS(status)}"
