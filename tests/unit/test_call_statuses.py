"""One classification of call statuses, shared by the smoke test and verification."""

from __future__ import annotations

import typing

from gem_graph import smoke, verify
from gem_graph.checks import execution
from gem_graph.sandbox import FATAL, LIMIT_HIT
from gem_graph.sandbox.episode import CallStatus


def test_every_fatal_status_is_a_limit_hit_and_a_known_status() -> None:
    known = set(typing.get_args(CallStatus))
    assert FATAL <= LIMIT_HIT <= known
    assert known - LIMIT_HIT == {"ok", "tool_error", "error"}  # what the code itself returned


def test_no_other_module_keeps_a_status_list_of_its_own() -> None:
    for module in (smoke, verify, execution):
        own = [
            name
            for name, value in vars(module).items()
            if isinstance(value, set | frozenset)
            and value & {"timeout", "crashed"}
            and value is not FATAL
            and value is not LIMIT_HIT
        ]
        assert own == [], f"{module.__name__} defines its own status list: {own}"
