"""A run session's bookends: the settings check that guards a resume, the LLM cache
namespace, and closing the session into a `RunSummary`."""

from __future__ import annotations

import time
from typing import Any

from gem_graph.run.config import (
    differences,
    fingerprint,
    output_settings,
    prompt_versions,
    settings_snapshot,
    versions,
)
from gem_graph.run.options import (
    RunOptions,
    RunSummary,
    SettingsMismatch,
    cache_file,
    segment_size,
)
from gem_graph.run.report import RunCounters
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings


def output_fingerprint(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The fingerprint a resume must match, and the output settings it is taken over."""
    outputs = output_settings(settings, segment_chars=segment_size(settings))
    return fingerprint(outputs), outputs


def check_settings(
    store: RunStore, settings: Settings, options: RunOptions
) -> tuple[str, dict[str, Any]]:
    """Refuse a run folder made with output-changing settings unless forced; record ours."""
    current, outputs = output_fingerprint(settings)
    previous = store.get_meta("fingerprint")
    if previous is not None and previous != current and not options.force_new_settings:
        changes = differences(store.get_meta("output_settings") or {}, outputs)
        shown = "; ".join(changes[:6]) + (" …" if len(changes) > 6 else "")
        raise SettingsMismatch(
            f"{options.run_dir} was run with different settings ({shown}); use a new "
            "output folder, or pass --force-new-settings to continue it with the new ones"
        )
    cache = cache_file(settings, options.run_dir)
    store.set_meta(
        {
            "fingerprint": current,
            "output_settings": outputs,
            "settings": settings_snapshot(settings),
            "versions": versions(),
            "options": {
                "concurrency": settings.run.concurrency,
                "limit": settings.run.limit,
                "requests_per_second": settings.run.requests_per_second,
                "segment_chars": segment_size(settings),
                "max_segments": settings.run.max_segments,
                "cache_path": str(cache)
                if (cache := cache_file(settings, options.run_dir))
                else None,
                "command": options.command,
            },
        }
    )
    return current, outputs


def cache_namespace() -> str:
    """The LLM cache namespace: every stage prompt's `name@version`."""
    return "|".join(f"{k}={v}" for k, v in sorted(prompt_versions().items()))


def close_session(
    store: RunStore, session: int, counters: RunCounters, stopped: str | None
) -> dict[str, Any]:
    """End the store's session (if one started) and close the store; returns its summary."""
    if session:
        store.finish_session(session, processed=counters.processed, stopped_reason=stopped)
    summary = store.summary()
    store.close()
    return summary


def run_summary(
    options: RunOptions,
    counters: RunCounters,
    *,
    started: float,
    stopped_reason: str | None,
    summary: dict[str, Any],
    cache_hits: int,
) -> RunSummary:
    """The `RunSummary` of a session from its counters and the store's summary."""
    return RunSummary(
        run_dir=options.run_dir,
        processed=counters.processed,
        skipped=counters.skipped,
        kept=counters.kept,
        rejected=counters.rejected_total,
        failed=counters.failed,
        records=counters.records,
        wall_seconds=round(time.monotonic() - started, 3),
        stopped_reason=stopped_reason,
        summary=summary,
        cache_hits=cache_hits,
    )
