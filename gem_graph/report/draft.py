"""Problems at their place in a draft: the draft pretty-printed as lines, each problem
pinned to the line where its `where` path (`workflows[0].example_calls[1]`) starts.

Problems are located by path; a path that goes deeper than the draft (into a JSON string
of arguments, say) is pinned to the deepest part that exists, and a path that names
nothing in the draft (`R3`, or empty) is listed as not placed. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

Path = tuple[str | int, ...]
MAX_LINES = 3000
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def parse_where(where: str) -> Path:
    """`a[0].b` → `("a", 0, "b")`; an empty or unparsable path gives `()`."""
    tokens: list[str | int] = []
    for index, name in _TOKEN.findall(where or ""):
        tokens.append(int(index) if index else name.strip())
    return tuple(t for t in tokens if t != "")


def location_label(where: str) -> str:
    """A path as the viewer names it: `workflows[0] › example_calls[1]`."""
    parts: list[str] = []
    for token in parse_where(where):
        if isinstance(token, int) and parts:
            parts[-1] += f"[{token}]"
        else:
            parts.append(str(token))
    return " › ".join(parts) if parts else "(whole answer)"


class _Printer:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.line_of: dict[Path, int] = {}

    def emit(self, value: Any, path: Path, depth: int, head: str, comma: str) -> None:
        if len(self.lines) >= MAX_LINES:
            return
        self.line_of.setdefault(path, len(self.lines))
        pad = "  " * depth
        if isinstance(value, dict) and value:
            self.lines.append({"text": f"{pad}{head}{{", "depth": depth})
            items = list(value.items())
            for i, (key, item) in enumerate(items):
                name = json.dumps(str(key), ensure_ascii=False)
                self.emit(item, (*path, str(key)), depth + 1, f"{name}: ", _comma(i, items))
            self.lines.append({"text": f"{pad}}}{comma}", "depth": depth})
        elif isinstance(value, list) and value:
            self.lines.append({"text": f"{pad}{head}[", "depth": depth})
            for i, item in enumerate(value):
                self.emit(item, (*path, i), depth + 1, "", _comma(i, value))
            self.lines.append({"text": f"{pad}]{comma}", "depth": depth})
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
            self.lines.append({"text": f"{pad}{head}{text}{comma}", "depth": depth})


def _comma(i: int, items: Sequence[Any]) -> str:
    return "," if i < len(items) - 1 else ""


def annotate(draft: Any, problems: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The draft's lines with the indexes of the problems located on each, and the rest."""
    printer = _Printer()
    printer.emit(draft, (), 0, "", "")
    lines = [{**line, "problems": []} for line in printer.lines]
    unplaced: list[int] = []
    for index, problem in enumerate(problems):
        path = parse_where(str(problem.get("where") or ""))
        line = next(
            (
                printer.line_of[path[:n]]
                for n in range(len(path), 0, -1)
                if path[:n] in printer.line_of
            ),
            None,
        )
        if line is None:
            unplaced.append(index)
        else:
            lines[line]["problems"].append(index)
    return {"lines": lines, "unplaced": unplaced, "truncated": len(lines) >= MAX_LINES}
