"""The sandbox that executes LLM-written tool code: one locked-down worker per episode.

async with Sandbox(settings) as sandbox:
    database = {"schema_sql": ddl, "seed": rows, "rows": scenario_rows}  # or SQLite bytes
    episode = await sandbox.open_episode(tools_source, database, now=None, seed=0)
    await episode.load()
    result = await episode.call("get_order", {"order_id": "o_1"})
    state = await episode.state()  # {"sha256", "diff"}, computed by the episode's monitor
    await episode.close()
"""

from gem_graph.sandbox.episode import (
    FATAL,
    LIMIT_HIT,
    CallResult,
    DatabaseSpec,
    Episode,
    EpisodeState,
)
from gem_graph.sandbox.errors import (
    EpisodeClosed,
    InvalidDatabase,
    SandboxError,
    SandboxInfrastructureError,
    SandboxUnavailable,
)
from gem_graph.sandbox.pool import Sandbox, retry_infrastructure
from gem_graph.sandbox.probe import probe

__all__ = [
    "FATAL",
    "LIMIT_HIT",
    "CallResult",
    "DatabaseSpec",
    "Episode",
    "EpisodeClosed",
    "EpisodeState",
    "InvalidDatabase",
    "Sandbox",
    "SandboxError",
    "SandboxInfrastructureError",
    "SandboxUnavailable",
    "probe",
    "retry_infrastructure",
]
