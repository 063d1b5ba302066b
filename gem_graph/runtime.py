"""The tool runtime: the only gem-graph module that synthesized tool code may import.

Tools get time, ids and randomness from here so that replaying a trajectory gives identical
outputs and an identical final state. Stdlib only: it is loaded inside the locked-down
sandbox worker, before any tool code runs, and the worker configures it per episode.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

__all__ = ["ToolError", "new_id", "now", "rng"]

DEFAULT_NOW = "2025-01-01T09:00:00+00:00"


class ToolError(Exception):
    """A domain failure (not found, rule violated); its message becomes the tool output."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = str(message)

    def __str__(self) -> str:
        return self.message


class _EpisodeState:
    """Clock, id counters and RNG of the current episode."""

    def __init__(self) -> None:
        self.now = _parse_now(None)
        self.seed = 0
        self.counters: dict[str, int] = {}
        self.random = random.Random(0)


def _parse_now(now_iso: str | None) -> datetime:
    """Parse the scenario clock; a naive timestamp is taken as UTC."""
    value = datetime.fromisoformat(now_iso or DEFAULT_NOW)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


_state = _EpisodeState()


def _configure(now_iso: str | None = None, seed: int = 0) -> None:
    """Start a new episode: set the clock, reset the id counters and reseed the RNG.

    Called by the sandbox worker before it executes tool code, and by trusted in-process tests.
    """
    _state.now = _parse_now(now_iso)
    _state.seed = int(seed)
    _state.counters = {}
    _state.random = random.Random(_state.seed)


def now() -> datetime:
    """The scenario clock: timezone-aware, constant within an episode."""
    return _state.now


def new_id(prefix: str) -> str:
    """Sequential ids per prefix and episode: `prefix_1`, `prefix_2`, …"""
    key = str(prefix)
    _state.counters[key] = _state.counters.get(key, 0) + 1
    return f"{key}_{_state.counters[key]}"


def rng() -> random.Random:
    """The episode's seeded random generator (same seed, same sequence)."""
    return _state.random
