"""The environment panel's data: tools, schema and policy, and the source text cut into
segments so the spans a tool, workflow step or rule came from can be highlighted.

Pure. Spans come from `provenance.spans` (character offsets into the source text); bad
offsets (reversed, outside the text, not integers) are dropped, not trusted.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any


def _span(value: Any, length: int) -> tuple[int, int] | None:
    """A usable `[start, end]` within a text of `length` characters, else None."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    start, end = value
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        return None
    start, end = max(start, 0), min(end, length)
    return (start, end) if start < end else None


def span_entries(spans: Mapping[str, Any] | None, length: int) -> list[dict[str, Any]]:
    """Every tool, step and rule of `provenance.spans`, numbered, with its usable span."""
    if not isinstance(spans, Mapping):
        return []
    entries: list[dict[str, Any]] = []

    def add(kind: str, label: str, value: Any) -> None:
        found = _span(value, length)
        entries.append(
            {
                "id": len(entries),
                "kind": kind,
                "label": label,
                "span": list(found) if found else None,
            }
        )

    tools = spans.get("tools")
    for name, value in tools.items() if isinstance(tools, Mapping) else []:
        add("tool", str(name), value)
    for step in spans.get("steps") or []:
        if isinstance(step, Mapping):
            add("step", f"{step.get('workflow', '')}: {step.get('step', '')}", step.get("span"))
    for rule in spans.get("rules") or []:
        if isinstance(rule, Mapping):
            add("rule", str(rule.get("rule", "")), rule.get("span"))
    return entries


def segments(text: str, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`text` cut at every span boundary; each piece lists the entry ids covering it."""
    cuts = {0, len(text)}
    for entry in entries:
        if entry.get("span"):
            cuts.update(entry["span"])
    points = sorted(cuts)
    out = []
    for start, end in itertools.pairwise(points):
        ids = [
            e["id"]
            for e in entries
            if e.get("span") and e["span"][0] <= start and end <= e["span"][1]
        ]
        out.append({"text": text[start:end], "ids": ids})
    return out


def source_view(text: str, spans: Mapping[str, Any] | None) -> dict[str, Any]:
    """The source text as highlighted segments, with the legend of what each span is."""
    entries = span_entries(spans, len(text))
    return {"segments": segments(text, entries), "entries": entries, "has_spans": bool(entries)}


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def environment_view(
    environment: Mapping[str, Any] | None, fallback_tools: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Tools (with pretty parameters and read-only / confirm flags), schema and policy.

    `environment` is what `RunReader.environments` read; without one (a run without
    execution, or a missing folder) the record's own tool list is shown.
    """
    env = dict(environment or {})
    read_only = set(env.get("read_only_tools") or [])
    confirm = set(env.get("confirm_before") or [])
    tools = []
    for tool in env.get("tools") or fallback_tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        name = str(function.get("name", ""))
        tools.append(
            {
                "name": name,
                "description": str(function.get("description", "")),
                "parameters": _pretty(function.get("parameters", {})),
                "read_only": name in read_only,
                "confirm": name in confirm,
            }
        )
    return {
        "name": env.get("name"),
        "description": env.get("description") or "",
        "policy": env.get("policy") or "",
        "schema_sql": env.get("schema_sql") or "",
        "tools": tools,
        "error": env.get("error"),
        "saved": bool(environment) and not env.get("error"),
    }
