"""The Ray actor of a run: one compiled graph, one sandbox and one model client.

`DocumentActor` is a plain class; `gem_graph.run.ray_pool` makes it a Ray actor (async,
with bounded concurrency). It is built from the run's `Settings` (as JSON, so every node
reads exactly the driver's values and no `GEM_*` variable of the node) and runs documents
through the same graph set-up as a local run (`runner.document_graph`). It never writes the
run store: each outcome goes back to the driver, which writes it once.

The LLM cache is one SQLite file per machine (`node_cache_file`): actors on the driver's
machine share the run's own cache file; an actor on another machine uses a file of its
own beside it. SQLite's WAL mode cannot be shared safely between machines, even when the
run folder is on shared storage.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gem_graph.run.engine import ModelFactory, settings_model
from gem_graph.run.options import RunError, cache_file
from gem_graph.settings import Settings


def node_name() -> str:
    """This node as users see it: `hostname (node id prefix)`."""
    host = socket.gethostname()
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    except Exception:  # outside Ray (unit tests) there is no node id
        return host
    return f"{host} (node {node_id[:12]})"


def check_sandbox_tier(settings: Settings, node: str) -> None:
    """Fail closed: raise `RunError` naming `node` when it cannot give the requested tier."""
    if not settings.pipeline.execute:
        return
    from gem_graph.sandbox.probe import probe

    tier = settings.sandbox.tier
    available = probe()["tiers"].get(tier)
    if available is not True:
        raise RunError(
            f"Ray node {node} cannot give the sandbox tier {tier!r}: {available}; fix the "
            "node or remove it from the cluster (the tier is never lowered silently)"
        )


def node_cache_file(settings: Settings, run_dir: Path, driver_host: str) -> Path | None:
    """The LLM cache file for this machine: the run's own (`run.cache`) on the driver's
    machine, `<name>.<hostname><suffix>` beside it on any other; None without a cache."""
    path = cache_file(settings, run_dir)
    host = socket.gethostname()
    if path is None or host == driver_host:
        return path
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host)
    return path.with_name(f"{path.stem}.{safe}{path.suffix}")


def process_cpu() -> float:
    """CPU seconds of this process and of the children it reaped."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class DocumentActor:
    """Runs documents of one run on one Ray worker process; see the module docstring."""

    def __init__(
        self,
        settings_json: str,
        run_dir: str,
        driver_host: str,
        model_factory: ModelFactory | None = None,
    ) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.run_dir = Path(run_dir)
        self.driver_host = driver_host
        self.model_factory = model_factory or settings_model
        self.node = node_name()
        self.stack = contextlib.AsyncExitStack()
        self.graph: Any = None
        self.cache: Any = None
        self.cpu_at_start = process_cpu()

    async def start(self) -> dict[str, Any]:
        """Check the sandbox tier, then build the model, cache, sandbox and graph.

        Returns where the actor runs. Raises `RunError` naming the node when it cannot.
        """
        from gem_graph.llm import aclose_chat_model
        from gem_graph.run.document import document_graph

        check_sandbox_tier(self.settings, self.node)
        try:
            llm = self.model_factory(self.settings)
            self.stack.push_async_callback(aclose_chat_model, llm)
            settings = self.settings
            cache = node_cache_file(settings, self.run_dir, self.driver_host)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                settings = settings.updated(run={"cache": cache})
            self.graph, self.cache = await self.stack.enter_async_context(
                document_graph(llm, settings, self.run_dir)
            )
        except RunError as exc:
            await self.stack.aclose()
            raise RunError(f"Ray node {self.node}: {exc}") from None
        except Exception as exc:
            await self.stack.aclose()
            raise RunError(
                f"Ray node {self.node} cannot start the run: {type(exc).__name__}: {exc}"
            ) from None
        return {"node": self.node, "pid": os.getpid()}

    async def process(self, document: dict[str, Any]) -> dict[str, Any]:
        """One document's outcome (`runner.DocumentOutcome` as a dict) and this node."""
        from gem_graph.run.document import invoke_graph

        if self.graph is None:
            raise RunError(f"Ray node {self.node}: the actor was not started")
        outcome = await invoke_graph(self.graph, document)
        return {"outcome": asdict(outcome), "node": self.node}

    async def close(self) -> dict[str, float]:
        """Close the sandbox, cache and model client; returns the cache hits and the CPU
        seconds this actor used since it was created (the sandbox's reaped processes
        included)."""
        hits = int(getattr(self.cache, "hits", 0) or 0)
        await self.stack.aclose()
        self.graph = None
        return {"cache_hits": hits, "cpu_s": process_cpu() - self.cpu_at_start}
