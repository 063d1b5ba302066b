"""Running tool calls for real: one replay engine, and the determinism check built on it.

The implement stage's smoke test, trajectory verification and the synthesizer's checks
are thin users of it: each turns its calls into `Call`s, with the location its problems
should point at, and reads the `Replay`s back.

- `replay`: `Call`, `Replay`, `Parts`, `replay_calls` (one episode), `replay_twice` (two
  episodes with different salts, run together, retried when the machine fails).
- `determinism`: `compare_replays`, the one comparison of two replays.
"""

from gem_graph.execution.determinism import compare_replays
from gem_graph.execution.replay import Call, Parts, Replay, replay_calls, replay_twice

__all__ = ["Call", "Parts", "Replay", "compare_replays", "replay_calls", "replay_twice"]
