"""What a run is told beyond `Settings` (`RunOptions`), what it reports (`RunSummary`), its
errors, and the small rules every runner shares: segment size, cache file, sharding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gem_graph.settings import Settings

DEFAULT_SEGMENT_CHARS = 8_000


class RunError(Exception):
    """A run that cannot start or cannot go on; the message is meant for the user."""


class SettingsMismatch(RunError):
    """The run folder was made with settings that produce different outputs."""


class EndpointUnreachable(RunError):
    """The model server cannot be reached."""


FAILED_CODES = frozenset({"transport", "infrastructure"})
SANDBOX_FAILURE = "the sandbox failed"
"""How an `infrastructure` reject's reason begins (see `nodes.failure_handler`)."""
"""Reject codes that say the machine failed, not the document: stored `failed`, retried."""


@dataclass
class RunOptions:
    """One invocation of a run: where it writes and how it reports. How the run is carried
    out (concurrency, limits, cache, segments) is `Settings.run`."""

    run_dir: Path
    force_new_settings: bool = False
    """Continue a run folder made with different output settings. Finished documents are
    kept as they are; only new and failed documents use the new settings."""
    progress: bool = True
    total: int | None = None
    """Input documents expected, for the progress bar's ETA."""
    endpoint: str | None = None
    """Where the model is served, for messages (default: the model's base URL)."""
    preflight: bool = True
    """Check that the model server accepts connections before starting."""
    command: list[str] | None = None
    """The command line, recorded in the store."""
    shard: tuple[int, int] | None = None
    """`(index, count)`: handle only the input entries `shard_of(position, count) == index`
    (positions count entries from 0 in corpus order, as `limit` does). Set by
    the multi-process runner for each worker; None handles every document."""


def segment_size(settings: Settings) -> int:
    """The run's segment size: `run.segment_chars`, else min(8,000, max_text_chars)."""
    size = settings.run.segment_chars or min(
        DEFAULT_SEGMENT_CHARS, settings.pipeline.max_text_chars
    )
    if size > settings.pipeline.max_text_chars:
        raise RunError(
            f"segment size {size} is over the pipeline's max_text_chars "
            f"({settings.pipeline.max_text_chars}); lower it or raise max_text_chars"
        )
    return size


def cache_file(settings: Settings, run_dir: Path) -> Path | None:
    """Where the LLM response cache lives: `run.cache` true → in the run folder."""
    cache = settings.run.cache
    if cache is True:
        return run_dir / "llm_cache.sqlite"
    return None if cache is False else Path(cache)


@dataclass
class RunSummary:
    """What one `run_corpus` call did, plus the whole store's summary."""

    run_dir: Path
    processed: int
    skipped: int
    kept: int
    rejected: int
    failed: int
    records: int
    wall_seconds: float
    stopped_reason: str | None
    summary: dict[str, Any] = field(default_factory=dict)
    cache_hits: int = 0

    @property
    def complete(self) -> bool:
        """True when the run was not stopped and no document failed on the transport."""
        return self.stopped_reason is None and self.failed == 0


def shard_of(ordinal: int, count: int) -> int:
    """The worker (0 … count-1) that handles the input entry at position `ordinal`.

    Entries are dealt round-robin in corpus order: every worker reads the same stream, so
    each entry goes to exactly one worker, a re-run of the same input gives every worker the
    same entries, and the shares differ by at most one entry (a hash of the id would leave
    one worker running alone at the end). Every segment of a document goes to the worker of
    its input entry.
    """
    return ordinal % count
