"""The README's "Problem codes" section lists every code, one line each."""

from __future__ import annotations

import re
from pathlib import Path

from gem_graph.checks.problems import CODES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_every_problem_code():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Problem codes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- `(\w+)`:", section, re.MULTILINE)
    assert sorted(set(listed)) == sorted(CODES)
    assert len(listed) == len(set(listed))
