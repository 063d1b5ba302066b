"""The sandbox that executes LLM-written tool code: one locked-down worker per episode.

async with Sandbox(settings) as sandbox:
    episode = await sandbox.open_episode(tools_source, db_bytes, now=None, seed=0)
    await episode.load()
    result = await episode.call("get_order", {"order_id": "o_1"})
    db_bytes = await episode.snapshot()
    await episode.close()
"""

from gem_graph.sandbox.episode import FATAL, CallResult, Episode
from gem_graph.sandbox.errors import (
    EpisodeClosed,
    InvalidDatabase,
    SandboxError,
    SandboxUnavailable,
)
from gem_graph.sandbox.pool import Sandbox
from gem_graph.sandbox.probe import probe

__all__ = [
    "FATAL",
    "CallResult",
    "Episode",
    "EpisodeClosed",
    "InvalidDatabase",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "probe",
]
