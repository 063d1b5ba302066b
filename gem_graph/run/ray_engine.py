"""The Ray engine: a corpus run whose documents are processed by Ray actors.

The driver (the process calling `run_corpus(..., engine="ray")` or `gem-graph run --engine
ray`) does what it does in a local run: it streams the corpus (never loading it whole),
turns bad entries into rejects, splits long texts, skips documents an earlier run finished,
keeps at most `run.concurrency` documents in flight, owns the SQLite run store and writes
each outcome as it comes back, shows the progress and stops on a dead endpoint. Only the
graph runs elsewhere: in an `ActorPool` of `DocumentActor`s (one graph, one sandbox, one
model client each). Since one process writes the store, every document ends in it exactly
once, and a killed driver resumes like a local run.

Without `run.ray_address`, the run starts a private local Ray (one CPU per actor, no
dashboard) and stops it at the end; `--workers N` is that with N actors.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.run.corpus import CorpusItem
from gem_graph.run.engine import ModelFactory, require_ray
from gem_graph.run.options import RunError, RunOptions
from gem_graph.run.report import ProgressDisplay, RunCounters
from gem_graph.run.runner import ShardOutcome, _Runner
from gem_graph.run.store import RunStore
from gem_graph.settings import Settings


@contextlib.contextmanager
def ray_connection(settings: Settings) -> Iterator[str]:
    """Ray for this run: the caller's if already initialised, the cluster at
    `run.ray_address`, or a new local Ray with `run.workers` CPUs (one per core when 1).
    Yields a description of where; disconnects (or stops the local Ray) at the end."""
    require_ray()
    import ray

    if ray.is_initialized():
        yield "the Ray this process already joined"
        return
    address = settings.run.ray_address
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    # Ray would otherwise replace `builtins.print` in this process (for its tqdm bars) the
    # first time it reports a dead worker; the caller's process is not Ray's to patch.
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    try:
        if address:
            ray.init(address=address, **quiet)
            where = f"the Ray cluster at {address}"
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            cpus = settings.run.workers if settings.run.workers > 1 else os.cpu_count() or 1
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
            where = f"a local Ray with {cpus} CPU(s)"
    except RunError:
        raise
    except Exception as exc:
        target = address or "a local Ray"
        raise RunError(f"cannot start or join {target}: {type(exc).__name__}: {exc}") from None
    try:
        yield where
    finally:
        ray.shutdown()


def actor_count(settings: Settings) -> int:
    """Actors for the run: `run.workers` when above 1, else one per CPU of the cluster;
    never more than `run.concurrency`, nor than the cluster's CPUs (one each)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    wanted = settings.run.workers if settings.run.workers > 1 else max(1, cpus)
    if wanted > cpus:
        raise RunError(
            f"the run asks for {wanted} Ray actors, one CPU each, but the cluster has "
            f"{cpus} CPU(s); lower --workers or add nodes"
        )
    return max(1, min(wanted, settings.run.concurrency))


async def run_shard_on_ray(
    items: Iterable[CorpusItem],
    *,
    llm: BaseChatModel,
    settings: Settings,
    options: RunOptions,
    store: RunStore,
    settings_fingerprint: str,
    endpoint: str | None,
    counters: RunCounters,
    model_factory: ModelFactory | None = None,
) -> ShardOutcome:
    """`runner.run_shard` with the graph in Ray actors (see the module docstring).

    `llm` is not sent anywhere: each actor builds its own with `model_factory(settings)`.
    """
    from gem_graph.run.ray_pool import ActorPool

    del llm
    with ray_connection(settings) as where:
        pool = ActorPool(
            settings,
            options.run_dir,
            count=actor_count(settings),
            model_factory=model_factory,
        )
        closed = False
        try:
            await pool.start()
            runner = _Runner(
                graph=None,
                store=store,
                settings=settings,
                options=options,
                settings_fingerprint=settings_fingerprint,
                endpoint=endpoint,
                counters=counters,
                invoke=pool.invoke,
            )
            with ProgressDisplay(counters, enabled=options.progress):
                await runner.run(items)
            await pool.close()
            closed = True
        finally:
            if not closed:
                pool.kill()
            store.set_meta(
                {
                    "engine": {
                        "name": "ray",
                        "where": where,
                        "actors": pool.count,
                        "documents_by_node": dict(pool.stats.by_node),
                        "actor_deaths": pool.stats.actor_deaths,
                        "documents_sent_again": pool.stats.resent,
                        "actor_cpu_seconds": round(pool.stats.actor_cpu_s, 3),
                    }
                }
            )
    return ShardOutcome(runner.stopped_reason, pool.stats.cache_hits)
