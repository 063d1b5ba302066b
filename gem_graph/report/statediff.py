"""Which write call made which row change, for the diff drawn under each call.

A record's `verification.state_diff` is the net row diff of the whole trajectory (first
state to last), not one diff per call. The viewer shows each changed row under the
successful write call whose arguments or output name it best:
- a named column with the same value (`fines_balance: 7.5` in the output, or
  `member_id: "mem_31"` in the arguments) is strong evidence, more so in the output
  (which shows what the call did) and more so for an updated row's key;
- a distinctive bare value (an id, a name, an amount of 10 or more) anywhere in the call
  is weaker evidence.
Ties go to the later call, whose write is the one the final state shows. A row that no
successful write call names is listed after the dialogue as unattributed. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPS = ("inserted", "updated", "deleted")

Scalar = tuple[str, Any]
"""A scalar normalised for comparison: ("s", text), ("n", float) or ("o", other)."""


def _norm(value: Any) -> Scalar | None:
    if isinstance(value, bool) or value is None:
        return ("o", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    if isinstance(value, str):
        return ("s", value)
    return None


def _distinctive(value: Scalar) -> bool:
    """Ids, names and amounts rather than flags and small counts."""
    kind, raw = value
    if kind == "s":
        return len(raw) >= 3
    return kind == "n" and abs(raw) >= 10


@dataclass(frozen=True)
class Evidence:
    """What one JSON value (a call's arguments or output) names."""

    pairs: frozenset[tuple[str, Scalar]]
    """(column-like name, value) of every scalar under a dict key, at any depth."""
    values: frozenset[Scalar]
    """Every distinctive scalar, wherever it sits."""

    @classmethod
    def of(cls, value: Any) -> Evidence:
        pairs: set[tuple[str, Scalar]] = set()
        values: set[Scalar] = set()
        stack: list[tuple[str | None, Any]] = [(None, value)]
        while stack:
            name, item = stack.pop()
            if isinstance(item, Mapping):
                stack.extend((str(k), v) for k, v in item.items())
            elif isinstance(item, list):
                stack.extend((name, v) for v in item)
            elif (scalar := _norm(item)) is not None:
                if name is not None:
                    pairs.add((name, scalar))
                if _distinctive(scalar):
                    values.add(scalar)
        return cls(frozenset(pairs), frozenset(values))

    def names(self, column: str, value: Any, pair: int) -> int:
        """`pair` when this names `column` with `value`, 1 when it holds the distinctive
        value elsewhere, else 0."""
        scalar = _norm(value)
        if scalar is None:
            return 0
        if (column, scalar) in self.pairs:
            return pair
        return 1 if scalar in self.values else 0


def flatten(state_diff: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The diff as one entry per changed row: `table`, `op` and the row's parts."""
    rows: list[dict[str, Any]] = []
    for table, diff in sorted((state_diff or {}).items()):
        if not isinstance(diff, Mapping):
            continue
        for op in OPS:
            for entry in diff.get(op) or []:
                if not isinstance(entry, Mapping):
                    continue
                if op == "updated":
                    rows.append(
                        {
                            "table": table,
                            "op": op,
                            "key": dict(entry.get("key") or {}),
                            "before": dict(entry.get("before") or {}),
                            "after": dict(entry.get("after") or {}),
                        }
                    )
                else:
                    rows.append({"table": table, "op": op, "row": dict(entry)})
    return rows


def score(row: Mapping[str, Any], arguments: Evidence, output: Evidence) -> int:
    """How strongly one call's arguments and output name one flattened diff row."""
    if row["op"] == "updated":
        key, rest = row["key"], row["after"]
    else:
        key, rest = {}, row["row"]

    def named(column: str, value: Any) -> int:
        return max(output.names(column, value, 3), arguments.names(column, value, 2))

    return 2 * sum(named(c, v) for c, v in key.items()) + sum(named(c, v) for c, v in rest.items())


def attribute(
    rows: Sequence[Mapping[str, Any]], calls: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[Mapping[str, Any]]]:
    """Assign each diff row to the successful write call that names it best.

    `calls` are `{"call_id", "arguments", "output"}` of the successful calls of tools that
    may write, in dialogue order. Returns rows per call id, and the rows no call names.
    """
    candidates = [
        (str(call["call_id"]), Evidence.of(call.get("arguments")), Evidence.of(call.get("output")))
        for call in calls
    ]
    owned: dict[str, list[Mapping[str, Any]]] = {}
    loose: list[Mapping[str, Any]] = []
    for row in rows:
        best, best_score = None, 0
        for call_id, arguments, output in candidates:
            found = score(row, arguments, output)
            if found and found >= best_score:
                best, best_score = call_id, found
        if best is None:
            loose.append(row)
        else:
            owned.setdefault(best, []).append(row)
    return owned, loose
