"""The Sandbox: checks the tier, keeps workers pre-started, opens episodes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from gem_graph.sandbox.episode import DatabaseSpec, Episode
from gem_graph.sandbox.errors import SandboxInfrastructureError, SandboxUnavailable
from gem_graph.sandbox.forkserver import ForkServer, Zygote
from gem_graph.sandbox.launch import worker_config
from gem_graph.sandbox.probe import probe, seccomp_binding_dir
from gem_graph.sandbox.process import FreshWorker, WorkerHandle
from gem_graph.sandbox.templates import TemplateCache
from gem_graph.settings import SandboxSettings

_LOG = logging.getLogger("gem_graph.sandbox")

INFRASTRUCTURE_ATTEMPTS = 3
"""Tries to open an episode when the machine, not the tool code, fails (fork server gone)."""
_T = TypeVar("_T")


async def retry_infrastructure(
    run: Callable[[], Awaitable[_T]], attempts: int = INFRASTRUCTURE_ATTEMPTS
) -> _T:
    """Run `run()` again when the sandbox, not the code under test, failed under it.

    A replay is deterministic, so running it again on a fresh worker gives the answer the
    lost one would have. The last `SandboxInfrastructureError` propagates.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except SandboxInfrastructureError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


class Sandbox:
    """Runs untrusted tool code, one locked-down worker per episode.

    Cheap to construct; the fork server and pre-started workers come up lazily on first use
    (or on `async with`). `aclose()` kills everything it started.
    """

    def __init__(
        self, settings: SandboxSettings | None = None, *, _break: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings or SandboxSettings()
        self._break = tuple(_break)  # tests only: simulate a missing layer (fail closed)
        self._zygote: Zygote | None = None
        self._templates = TemplateCache(self.settings.templates, self.settings.build_timeout_s + 2)
        self._ready: collections.deque[asyncio.Task[WorkerHandle]] = collections.deque()
        self._live: set[WorkerHandle] = set()
        self._cwd: str | None = None
        self._config: dict[str, Any] | None = None
        self._bwrap: str | None = None
        self._start_lock: asyncio.Lock | None = None
        self._closed = False
        self._said_unconfined = False
        self._prestarting = not (self.settings.fork_server and self.settings.templates > 0)
        """With templates, episodes fork from them; pre-start only once one does not."""

    # ------------------------------------------------------------------ tier and start-up

    def _check_tier(self) -> None:
        tier = self.settings.tier
        if tier == "none":
            if not self.settings.allow_unsafe_none:
                raise SandboxUnavailable(
                    'tier "none" runs untrusted code with rlimits only; '
                    "set allow_unsafe_none=True to opt in"
                )
            return
        available = probe()["tiers"].get(tier)
        if available is not True:
            raise SandboxUnavailable(f"sandbox tier {tier!r} is unavailable: {available}")

    def _prepare(self) -> None:
        if self._config is not None:
            return
        self._check_tier()
        _raise_open_file_limit()
        info = probe()
        self._bwrap = info["bwrap"] if self.settings.tier == "strict" else None
        self._cwd = tempfile.mkdtemp(prefix="gem-sandbox-")
        self._config = worker_config(
            self.settings,
            seccomp_dir=seccomp_binding_dir(),
            bwrap=self._bwrap is not None,
            broken=self._break,
        )

    async def start(self) -> None:
        """Start the fork server (if used) and the pre-started workers."""
        if self._closed:
            raise SandboxUnavailable("sandbox is closed")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            self._prepare()
            assert self._config is not None and self._cwd is not None
            if self.settings.fork_server and (self._zygote is None or not self._zygote.alive):
                restarting = self._zygote is not None
                zygote = Zygote(self._config, self._bwrap, self._cwd)
                try:
                    await zygote.start()
                except SandboxUnavailable as exc:
                    if not restarting:
                        raise  # the tier cannot be applied here: fail closed
                    # It started before, so the tier is fine; the machine failed this time.
                    raise SandboxInfrastructureError(f"restarting the fork server: {exc}") from exc
                self._check_isolation(zygote.isolation)
                self._zygote = zygote
        if self._prestarting:
            self._top_up()

    def _check_isolation(self, isolation: dict[str, Any]) -> None:
        """Fail closed when the worker reports fewer layers than the tier requires."""
        tier = self.settings.tier
        if tier == "none":
            return
        missing = []
        if not isolation.get("landlock"):
            missing.append("landlock")
        if not isolation.get("seccomp"):
            missing.append("seccomp")
        if not isolation.get("no_new_privs") or not isolation.get("rlimits"):
            missing.append("rlimits/prctl")
        if tier == "strict" and not isolation.get("bwrap"):
            missing.append("bwrap")
        if missing:
            raise SandboxUnavailable(f"tier {tier!r} not applied: missing {', '.join(missing)}")

    async def _launch(self, server: ForkServer | None = None) -> WorkerHandle:
        """A started, checked worker: from `server` (a template), the zygote, or fresh."""
        assert self._config is not None and self._cwd is not None
        handle: WorkerHandle
        if server is not None:
            handle = await server.spawn()
        elif self.settings.fork_server:
            if self._zygote is None or not self._zygote.alive:
                raise SandboxInfrastructureError("the fork server is not running")
            handle = await self._zygote.spawn()
        else:
            handle = await FreshWorker.start(self._config, self._bwrap, self._cwd)
        self._live.add(handle)
        try:
            isolation = await handle.await_ready()
            self._check_isolation(isolation)
        except BaseException:
            self._live.discard(handle)
            await handle.kill()
            raise
        isolation["fork_server"] = self.settings.fork_server
        return handle

    def _top_up(self) -> None:
        while len(self._ready) < self.settings.prestart and not self._closed:
            task = asyncio.ensure_future(self._launch())
            task.add_done_callback(_consume_exception)
            self._ready.append(task)

    async def _acquire(self) -> WorkerHandle:
        """A worker for an episode that brings its own database (bytes, or no templates)."""
        self._prestarting = True  # from now on keep workers ready for the next such episode
        await self.start()  # (re)starts a fork server that is not running
        while self._ready:
            task = self._ready.popleft()
            try:
                handle = await task
            except SandboxInfrastructureError:
                continue  # pre-started by a fork server that has since died
            self._top_up()
            return handle
        handle = await self._launch()
        self._top_up()
        return handle

    # ------------------------------------------------------------------ public API

    @property
    def reaped_cpu_s(self) -> float:
        """CPU seconds spent by the fork server's episodes that have ended (for benchmarks)."""
        zygote = self._zygote.reaped_cpu_s if self._zygote is not None else 0.0
        return zygote + self._templates.reaped_cpu_s

    async def open_episode(
        self,
        tools_source: str,
        database: bytes | DatabaseSpec,
        *,
        now: str | None = None,
        seed: int = 0,
        salt: int = 0,
    ) -> Episode:
        """A fresh, locked-down episode holding its database and `tools_source` (not yet run).

        `database` is serialised SQLite bytes, or a `DatabaseSpec` built inside the sandbox
        (untrusted DDL never runs in this process): with the fork server, once per schema
        and seed in a template that every such episode forks from. `salt` varies what a tool
        must not depend on (wall clock, global random state, memory layout) between
        replays. Raises `InvalidDatabase` when the database cannot be built or opened, and
        `SandboxInfrastructureError` when no worker could be had after retries.
        """
        if self.settings.tier == "none":
            self._check_tier()
            if not self._said_unconfined:
                self._said_unconfined = True
                _LOG.warning('sandbox tier "none": untrusted tool code runs with rlimits only')

        templated = (
            not isinstance(database, bytes | bytearray)
            and self.settings.fork_server
            and self.settings.templates > 0
        )

        async def open_once() -> Episode:
            spec = database
            if templated:
                assert isinstance(database, dict)
                await self.start()
                assert self._zygote is not None
                template = await self._templates.get(self._zygote, database)
                handle = await self._launch(template)
                spec = DatabaseSpec(rows=database.get("rows"))
            else:
                handle = await self._acquire()
            self._live.discard(handle)
            episode = Episode(handle, self.settings, dict(handle.isolation))
            await episode._init(tools_source, spec, now, seed, salt)
            return episode

        return await retry_infrastructure(open_once)

    async def aclose(self) -> None:
        """Kill pre-started workers and the fork server; leaves no process behind."""
        self._closed = True
        await self._templates.aclose()
        while self._ready:
            task = self._ready.popleft()
            task.cancel()
            with contextlib.suppress(BaseException):
                handle = await task
                await handle.kill()
        for handle in list(self._live):
            await handle.kill()
        self._live.clear()
        if self._zygote is not None:
            await self._zygote.close()
            self._zygote = None
        if self._cwd is not None:
            shutil.rmtree(self._cwd, ignore_errors=True)
            self._cwd = None

    def abandon(self) -> None:
        """Kill everything this sandbox started, without an event loop.

        For a sandbox whose loop has already closed (each `asyncio.run` has its own), where
        `aclose()` can no longer run. Killing the fork server's process group takes its
        children with it; pre-started fresh workers lead process groups of their own.
        """
        self._closed = True
        handles = list(self._live)
        for task in self._ready:
            if task.done() and not task.cancelled() and task.exception() is None:
                handles.append(task.result())
        groups = [handle.pid for handle in handles if handle.pid]
        self._ready.clear()
        self._live.clear()
        if self._zygote is not None and self._zygote.proc is not None:
            groups.append(self._zygote.proc.pid)
            if self._zygote.sock is not None:
                self._zygote.sock.close()
                self._zygote.sock = None
        self._zygote = None
        for pid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if self._cwd is not None:
            shutil.rmtree(self._cwd, ignore_errors=True)
            self._cwd = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _raise_open_file_limit() -> None:
    """Lift this process's soft open-file limit to its hard limit.

    Each live episode holds three descriptors here (two pipes and a pidfd), so a thousand
    episodes in flight need more than the common soft default of 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _consume_exception(task: asyncio.Task[WorkerHandle]) -> None:
    if not task.cancelled():
        task.exception()
