"""What a record claims about itself, checked against the environment and the replay.

A record's `tools`, `environment` and `verification` are claims; `verify` trusts the
environment and its own replay, never the record. Pure functions over plain data.

Public API:
- `check_record_claims(record, *, environment_ref, tools, final_state_sha256, state_diff)
  -> list[ProblemDict]`: codes `tools_mismatch`, `environment_mismatch`, `state_mismatch`,
  and `invalid_record` for a claim of the wrong shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.dbstate import STATE_HASH_VERSION


def check_record_claims(
    record: Mapping[str, Any],
    *,
    environment_ref: Mapping[str, Any],
    tools: list[dict[str, Any]],
    final_state_sha256: str | None,
    state_diff: Any,
) -> list[ProblemDict]:
    """Problems where the record's own fields disagree with the environment or the replay.

    A field the record leaves out claims nothing; the state is compared only when the
    replay reached a final state.
    """
    problems: list[ProblemDict] = []
    if "tools" in record and _canonical_tools(record["tools"]) != _canonical_tools(tools):
        problems.append(
            problem(
                "tools_mismatch",
                "the record's tools differ from the environment's; calls are checked "
                "against the environment's schemas",
                "tools",
            )
        )
    claimed = record.get("environment")
    if claimed is not None:
        if not isinstance(claimed, Mapping):
            problems.append(
                problem("invalid_record", "environment must be an object", "environment")
            )
        else:
            for key in ("name", "sha256"):
                if key in claimed and claimed[key] != environment_ref[key]:
                    problems.append(
                        problem(
                            "environment_mismatch",
                            f"the record names environment {key} {_brief(claimed[key])}, but "
                            f"it is verified against {_brief(environment_ref[key])}",
                            f"environment.{key}",
                        )
                    )
    verification = record.get("verification")
    if verification is not None and not isinstance(verification, Mapping):
        problems.append(problem("invalid_record", "verification must be an object", "verification"))
    elif isinstance(verification, Mapping) and final_state_sha256 is not None:
        if (
            "final_state_sha256" in verification
            and verification["final_state_sha256"] != final_state_sha256
        ):
            message = (
                f"the recorded final state {_brief(verification['final_state_sha256'])} "
                f"is not the replay's {final_state_sha256}"
            )
            version = verification.get("state_hash_version", 1)
            if version != STATE_HASH_VERSION:
                message += (
                    f" (the record was hashed with state hash format {_brief(version)}; this "
                    f"version writes format {STATE_HASH_VERSION}: re-verify it to restamp)"
                )
            problems.append(problem("state_mismatch", message, "verification.final_state_sha256"))
        if "state_diff" in verification and _canonical(verification["state_diff"]) != _canonical(
            state_diff
        ):
            problems.append(
                problem(
                    "state_mismatch",
                    "the recorded state_diff is not the diff the replay produced",
                    "verification.state_diff",
                )
            )
    return problems


def _canonical_tools(tools: Any) -> str | None:
    """Tools compare as a set of function definitions: their order carries no meaning."""
    if isinstance(tools, list):
        tools = sorted(tools, key=_tool_sort_key)
    return _canonical(tools)


def _tool_sort_key(tool: Any) -> tuple[str, str]:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    return _canonical(name) or "", _canonical(tool) or ""


def _canonical(value: Any) -> str | None:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        return None


def _brief(value: Any, limit: int = 80) -> str:
    text = _canonical(value) or repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
