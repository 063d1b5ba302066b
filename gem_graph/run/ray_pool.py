"""The driver's pool of `DocumentActor`s: routing documents, and surviving actor deaths.

- Each document goes to the live actor with the fewest documents in flight.
- When an actor dies (its worker process or its whole node), its in-flight documents are
  sent again to another live actor, and a replacement actor is started in the background; it
  takes documents once it is up (on a node that has room: a restarted node, or one an
  autoscaler added).
- A document whose actor died `MAX_ATTEMPTS` times ends `failed` (code `infrastructure`),
  which a re-run retries; a dead worker is never a verdict on the document.
- When no actor is left and none comes back within `EMPTY_POOL_WAIT_S`, the run stops with
  a `RunError` (documents not yet written stay unprocessed, for a re-run).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gem_graph.contracts import make_reject
from gem_graph.run.document import DocumentOutcome
from gem_graph.run.engine import ModelFactory
from gem_graph.run.options import RunError
from gem_graph.run.ray_actor import DocumentActor
from gem_graph.settings import Settings

MAX_ATTEMPTS = 3
"""Actor deaths one document may see before it ends `failed`."""
EMPTY_POOL_WAIT_S = 60.0
"""How long the run waits for a replacement when every actor has died."""
CLOSE_TIMEOUT_S = 30.0
START_TIMEOUT_S = 300.0
"""Time for the first actors to start (worker processes, imports, sandbox)."""


@dataclass(eq=False)
class _Member:
    """One actor of the pool and what the driver knows of it."""

    handle: Any
    in_flight: int = 0
    node: str = "?"
    alive: bool = True


@dataclass
class PoolStats:
    """What the pool did: documents per node, actor deaths, documents sent again."""

    by_node: Counter[str] = field(default_factory=Counter)
    actor_deaths: int = 0
    resent: int = 0
    cache_hits: int = 0
    actor_cpu_s: float = 0.0
    """CPU of the actors' processes that closed normally (start-up and sandboxes included)."""


class ActorPool:
    """`count` async `DocumentActor`s spread over the cluster, each with a share of the run's
    concurrency and request rate. Use `await start()`, then `invoke`, then `await close()`."""

    def __init__(
        self,
        settings: Settings,
        run_dir: Path,
        *,
        count: int,
        model_factory: ModelFactory | None = None,
    ) -> None:
        import ray

        self.count = count
        per_actor = math.ceil(settings.run.concurrency / count)
        rps = settings.run.requests_per_second
        actor_settings = settings.updated(
            run={
                "concurrency": per_actor,
                "requests_per_second": rps / count if rps else None,
                "workers": 1,
                "engine": "local",
            }
        )
        self._options = {
            "num_cpus": 1,
            "max_concurrency": per_actor + 2,  # room for start/close beside the documents
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        self._remote = ray.remote(DocumentActor)
        self._args = (
            actor_settings.model_dump_json(),
            str(run_dir.resolve()),
            socket.gethostname(),
            model_factory,
        )
        self.members: list[_Member] = []
        self.stats = PoolStats()
        self._changed = asyncio.Event()
        self._replacements: set[asyncio.Task[None]] = set()
        self._replacements_left = 3 * count
        self._closed = False

    # ---- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every actor and wait until each has checked its node and built its graph.

        Raises `RunError` with the first actor's own message (e.g. a node lacking the sandbox
        tier) or when the actors cannot be placed in time.
        """
        members = [_Member(self._new_actor()) for _ in range(self.count)]
        self.members = members
        calls = [m.handle.start.remote() for m in members]
        try:
            infos = await asyncio.wait_for(asyncio.gather(*calls), timeout=START_TIMEOUT_S)
        except TimeoutError:
            raise RunError(
                f"{self.count} Ray actor(s) did not start within {START_TIMEOUT_S:.0f} s; "
                "does the cluster have a free CPU for each?"
            ) from None
        except Exception as exc:
            raise RunError(actor_error(exc)) from None
        for member, info in zip(members, infos, strict=True):
            member.node = str(info.get("node") or "?")

    def _new_actor(self) -> Any:
        return self._remote.options(**self._options).remote(*self._args)

    async def close(self) -> None:
        """Close every live actor (sandboxes, caches), collect cache hits, then kill them."""
        self._closed = True
        for task in self._replacements:
            task.cancel()
        live = [m for m in self.members if m.alive]
        calls = [m.handle.close.remote() for m in live]
        done: list[Any] = []
        if calls:
            with contextlib.suppress(TimeoutError):  # a stuck actor is killed below anyway
                done = await asyncio.wait_for(
                    asyncio.gather(*calls, return_exceptions=True), timeout=CLOSE_TIMEOUT_S
                )
            for reply in done:
                if isinstance(reply, dict):
                    self.stats.cache_hits += int(reply.get("cache_hits", 0))
                    self.stats.actor_cpu_s += float(reply.get("cpu_s", 0.0))
        self.kill()

    def kill(self) -> None:
        """End every actor now (also on Ctrl-C); their in-flight work is dropped."""
        import ray

        for member in self.members:
            with contextlib.suppress(Exception):
                ray.kill(member.handle, no_restart=True)
            member.alive = False

    # ---- documents ------------------------------------------------------------------------

    async def invoke(self, document: dict[str, Any]) -> DocumentOutcome:
        """Run `document` on a live actor, again on another one if that actor dies."""
        import ray.exceptions as rex

        last = ""
        for _ in range(MAX_ATTEMPTS):
            member = await self._pick()
            member.in_flight += 1
            try:
                reply = await member.handle.process.remote(document)
            except rex.RayActorError as exc:
                last = f"the Ray actor on {member.node} died: {first_line(exc)}"
                self._lost(member)
                self.stats.resent += 1
                continue
            except rex.RayError as exc:
                return failed(document, f"Ray could not run the document: {actor_error(exc)}")
            finally:
                member.in_flight -= 1
            self.stats.by_node[str(reply.get("node") or member.node)] += 1
            return DocumentOutcome(**reply["outcome"])
        self.stats.resent -= 1  # the last one was not sent again
        return failed(document, f"{MAX_ATTEMPTS} attempts, each time {last}")

    async def _pick(self) -> _Member:
        """The live actor with the least work; waits for one when every actor has died."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EMPTY_POOL_WAIT_S
        while True:
            live = [m for m in self.members if m.alive]
            if live:
                return min(live, key=lambda m: m.in_flight)
            if not self._replacements or loop.time() >= deadline:
                raise RunError(
                    "every Ray actor of the run died and none could be started again; "
                    "re-run the same command to resume"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - loop.time()))

    def _lost(self, member: _Member) -> None:
        """Take a dead actor out and start a replacement in the background."""
        import ray

        if not member.alive:
            return
        member.alive = False
        self.stats.actor_deaths += 1
        with contextlib.suppress(Exception):
            ray.kill(member.handle, no_restart=True)
        if self._closed or self._replacements_left <= 0:
            return
        self._replacements_left -= 1
        task = asyncio.create_task(self._replace())
        self._replacements.add(task)
        task.add_done_callback(self._replacements.discard)
        task.add_done_callback(lambda _: self._changed.set())

    async def _replace(self) -> None:
        member = _Member(self._new_actor())
        try:
            info = await member.handle.start.remote()
        except Exception:
            return  # it could not start either; the survivors carry on
        if self._closed:
            return
        member.node = str(info.get("node") or "?")
        self.members.append(member)
        self._changed.set()


def failed(document: dict[str, Any], reason: str) -> DocumentOutcome:
    """A document the cluster could not run: `failed`, so a re-run retries it."""
    reject = dict(make_reject(str(document["id"]), "runner", "infrastructure", reason[:2000]))
    now = time.time()
    return DocumentOutcome(
        status="failed",
        stage="runner",
        records=[],
        reject=reject,
        usage={},
        environments=[],
        started_at=now,
        finished_at=now,
    )


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__


def actor_error(exc: BaseException) -> str:
    """The message of an error raised inside an actor (our `RunError` text when it was one),
    else Ray's own text on one line (it says why a worker died)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RunError):
        return str(cause)
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"Ray: {text or type(exc).__name__}"[:1000]
