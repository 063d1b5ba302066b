"""Compare a tool output written in a dialogue with what the code really returned.

Pure functions over plain data: the written tool message content (a string) and the
sandbox's call result (a dict with `status`, `result`, `error`, `error_type`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gem_graph import strictjson
from gem_graph.checks.problems import ProblemDict, problem

SHOWN_LIMIT = 600
"""Characters of the real output quoted in feedback, enough for the model to rewrite."""


def tool_message_content(real: Mapping[str, Any]) -> str:
    """The tool message the contract prescribes for a real call result.

    The JSON of the return value, or `{"error": message}` for a `ToolError`. Other
    statuses are environment or sandbox failures that are never shown to an agent, so
    they raise `ValueError`.
    """
    status = real.get("status")
    if status == "ok":
        return _dumps(real.get("result"))
    if status == "tool_error":
        return _dumps({"error": str(real.get("error") or "")})
    raise ValueError(f"a call with status {status!r} has no tool message")


def compare_call(
    written_content: str | None, real: Mapping[str, Any], where: str
) -> list[ProblemDict]:
    """Problems between the written output of one call and its real result.

    A missing written output (`None`) is not compared here; the structural checks report
    it. A written error must give the real reason: messages are compared after folding
    case and whitespace, so the assistant's explanation gets repaired too.
    """
    status = real.get("status")
    if status == "error":
        kind = real.get("error_type") or "Exception"
        return [
            problem(
                "environment_crash",
                f"the tool code raised {kind}: {_clip(str(real.get('error') or ''))}"
                " (only ToolError may signal a domain failure)",
                where,
            )
        ]
    if status not in ("ok", "tool_error"):
        detail = real.get("error") or ""
        message = f"the sandbox stopped the call: {status}" + (
            f" ({_clip(str(detail))})" if detail else ""
        )
        return [problem("sandbox_violation", message, where)]
    if written_content is None:
        return []

    written = _parse(written_content)
    real_content = tool_message_content(real)
    if isinstance(written, _Ambiguous):
        return [
            problem(
                "output_mismatch",
                f"the written output is not strict JSON ({written.reason}), so it matches "
                f"nothing; this call really returned {_clip(real_content)}; make the dialogue "
                "consistent",
                where,
            )
        ]
    written_is_error = isinstance(written, dict) and "error" in written
    if status == "tool_error":
        if written_is_error:
            if _folded(written["error"]) == _folded(real.get("error")):
                return []
            return [
                problem(
                    "output_mismatch",
                    f"the tool refused this call with {real_content}, a different reason "
                    "than the dialogue shows; make the tool message and the assistant's "
                    "explanation consistent with the real reason",
                    where,
                )
            ]
        return [
            problem(
                "unexpected_error",
                f"the dialogue shows this call succeeding, but the tool refused it: "
                f"{real_content}; make the dialogue consistent with this error",
                where,
            )
        ]
    result = json.loads(real_content)
    if same_json(written, result):
        return []
    if written_is_error:
        return [
            problem(
                "unexpected_success",
                f"the dialogue shows an error, but this call really succeeded and returned "
                f"{_clip(real_content)}; make the dialogue consistent",
                where,
            )
        ]
    return [
        problem(
            "output_mismatch",
            f"this call really returned {_clip(real_content)}; make the dialogue consistent",
            where,
        )
    ]


def _folded(text: Any) -> str:
    return " ".join(str(text or "").split()).casefold()


def same_json(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class _Ambiguous:
    """A written output that only a lenient parser reads as JSON; it equals nothing."""

    reason: str


def _parse(content: str) -> Any:
    """The written output as strict JSON, or the plain string when it is not JSON at all.

    JSON that parsers read differently (duplicate keys, NaN, lone surrogates, too deep or
    too big) becomes `_Ambiguous`, so it can never pass for the real output.
    """
    try:
        return strictjson.loads(content)
    except strictjson.StrictJSONError as exc:
        return content if exc.kind == "syntax" else _Ambiguous(str(exc))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _clip(text: str, limit: int = SHOWN_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"
