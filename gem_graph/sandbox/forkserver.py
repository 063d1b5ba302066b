"""Clients of the fork servers: the zygote, and the database templates it forks.

A fork server answers spawn requests on a SOCK_SEQPACKET socket with a pidfd and the
child's pipes, and reports every child's exit with its CPU time. The zygote is the locked-
down root; a template is a child of the zygote holding one built database, whose episodes
start from it copy-on-write.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import socket
from typing import Any

from gem_graph.sandbox.errors import InvalidDatabase, SandboxInfrastructureError, SandboxUnavailable
from gem_graph.sandbox.launch import MINIMAL_ENV, worker_argv
from gem_graph.sandbox.process import (
    READY_TIMEOUT_S,
    BadFrame,
    ForkedWorker,
    FrameTooLarge,
    _pipe_streams,
    encode_frame,
    read_frame,
)

MAX_SPAWNS_IN_FLIGHT = 8
"""Spawn requests a fork server may be working on at once. Each reply carries three or four
descriptors, and descriptors in flight count against the sender's open-file limit, so
the bound keeps the fork server's replies deliverable however busy the client is."""


class ForkServer:
    """The client end of one fork server's control socket."""

    def __init__(self, parent: ForkServer | None = None) -> None:
        self.parent = parent
        self.sock: socket.socket | None = None
        self._alive = False
        self._spawns: dict[str, asyncio.Future[ForkedWorker]] = {}
        self._children: dict[str, ForkedWorker] = {}
        self._keys = itertools.count(1)
        self._in_flight = asyncio.Semaphore(MAX_SPAWNS_IN_FLIGHT)
        self.reaped_cpu_s = 0.0
        """CPU seconds of the children that have ended (each with what it reaped), plus the
        server's own, reported as it goes."""

    @property
    def alive(self) -> bool:
        return self._alive and (self.parent is None or self.parent.alive)

    @property
    def live_children(self) -> int:
        return len(self._children)

    def _listen(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._alive = True
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(
                    self.sock, 65536, 4, socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds = b"", []
            if not msg:
                for fd in fds:
                    os.close(fd)
                self._on_gone()
                return
            self._dispatch(json.loads(msg), fds)

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        if "spawn_failed" in msg:
            fut = self._spawns.pop(str(msg["spawn_failed"]), None)
            if fut is not None and not fut.done():
                reason = f"the fork server could not spawn: {str(msg.get('error') or '')[:300]}"
                fut.set_exception(SandboxInfrastructureError(reason))
        elif "spawned" in msg:
            fut = self._spawns.pop(str(msg["spawned"]), None)
            if fut is None or fut.done() or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                return
            handle = ForkedWorker(self, str(msg["spawned"]), int(msg["pid"]), fds[0])
            self._children[handle.key] = handle
            fut.set_result(handle)
            _attach(handle, fds[2], fds[1])
        self.reaped_cpu_s += float(msg.get("self_cpu") or 0.0)
        if "orphan_cpu" in msg:
            self.reaped_cpu_s += float(msg["orphan_cpu"] or 0.0)
        elif "exited" in msg:
            gone = self._children.pop(str(msg["exited"]), None)
            cpu = float(msg.get("cpu") or 0.0)
            self.reaped_cpu_s += cpu - _counted_below(gone)
            if gone is not None and not gone.exited.done():
                gone.exited.set_result((int(msg["status"]), cpu))

    def _on_gone(self) -> None:
        self._alive = False
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
        for fut in self._spawns.values():
            if not fut.done():
                fut.set_exception(SandboxInfrastructureError("the fork server exited"))
        self._spawns.clear()
        for handle in self._children.values():
            if not handle.exited.done():
                handle.exited.set_result((None, None))
        self._children.clear()

    async def spawn(self, *, control: socket.socket | None = None) -> ForkedWorker:
        """One new child; `SandboxInfrastructureError` when the server fails.

        With `control` (one end of a socket pair) the child is a template serving spawns
        on it: a fork server may not create sockets itself.
        """
        async with self._in_flight:
            if not self.alive or self.sock is None:
                raise SandboxInfrastructureError("the fork server is not running")
            loop = asyncio.get_running_loop()
            key = str(next(self._keys))
            fut: asyncio.Future[ForkedWorker] = loop.create_future()
            self._spawns[key] = fut
            try:
                request = json.dumps({"spawn": key, "template": control is not None}).encode()
                if control is None:
                    await loop.sock_sendall(self.sock, request)
                else:
                    _send_with_fd(self.sock, request, control.fileno())
                handle = await asyncio.wait_for(fut, READY_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                self._spawns.pop(key, None)
                raise SandboxInfrastructureError(
                    f"the fork server did not answer a spawn ({type(exc).__name__})"
                ) from exc
        await handle.connected  # type: ignore[attr-defined]
        return handle

    def close_socket(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self._on_gone()


def _send_with_fd(sock: socket.socket, message: bytes, fd: int) -> None:
    """One datagram carrying a descriptor (rare and small: a blocking retry is fine)."""
    while True:
        try:
            socket.send_fds(sock, [message], [fd])
            return
        except (BlockingIOError, InterruptedError):
            select.select([], [sock], [], 1.0)


def _attach(handle: ForkedWorker, read_fd: int, write_fd: int) -> None:
    async def connect() -> None:
        handle.reader, handle.writer = await _pipe_streams(read_fd, write_fd)

    handle.connected = asyncio.ensure_future(connect())  # type: ignore[attr-defined]


def _counted_below(child: ForkedWorker | None) -> float:
    """CPU a child template already reported for its own children (its exit total has it)."""
    return child.serves.reaped_cpu_s if child is not None and child.serves is not None else 0.0


class Zygote(ForkServer):
    """The root fork server: a locked-down `python -S` process started by us."""

    def __init__(self, config: dict[str, Any], bwrap: str | None, cwd: str) -> None:
        super().__init__()
        self.config = config
        self.bwrap = bwrap
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.isolation: dict[str, Any] = {}
        self._ready: asyncio.Future[dict[str, Any]] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            config = dict(self.config, ctl_fd=child.fileno(), spawns_in_flight=MAX_SPAWNS_IN_FLIGHT)
            self.proc = await asyncio.create_subprocess_exec(
                *worker_argv("zygote", config, self.bwrap),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=dict(MINIMAL_ENV),
                cwd=self.cwd,
                close_fds=True,
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
        finally:
            child.close()
        self._ready = loop.create_future()
        self._listen(parent)
        self._alive = False  # not until it says it is ready
        try:
            first = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except TimeoutError:
            first = {"unavailable": "the fork server did not start in time"}
        if not first.get("ready"):
            await self.close()
            raise SandboxUnavailable(str(first.get("unavailable") or "fork server failed"))
        self.isolation = dict(first.get("isolation") or {})
        self._alive = True

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(msg)
            return
        super()._dispatch(msg, fds)

    def _on_gone(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result({"unavailable": "the fork server exited during start-up"})
        super()._on_gone()

    async def close(self) -> None:
        """Kill the zygote's whole process group (its children die with it)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)
        self.close_socket()


class Template(ForkServer):
    """A child of the zygote holding one built database; its episodes fork from it."""

    def __init__(self, zygote: Zygote, process: ForkedWorker) -> None:
        super().__init__(parent=zygote)
        self.process = process
        process.serves = self

    @classmethod
    async def start(cls, zygote: Zygote, database: dict[str, Any], timeout: float) -> Template:
        """Fork a template and build `database` ({schema_sql, seed}) in it.

        Raises `InvalidDatabase` when the database cannot be built, and
        `SandboxInfrastructureError` when the machine failed under it.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await zygote.spawn(control=theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        template = cls(zygote, process)
        control = ours.detach()
        try:
            await process.await_ready()
            process.writer.write(encode_frame({"op": "build", "database": database}))
            await process.writer.drain()
            reply = await asyncio.wait_for(read_frame(process.reader, 65536), timeout)
        except (TimeoutError, asyncio.IncompleteReadError, OSError, BadFrame, FrameTooLarge) as e:
            os.close(control)
            await process.kill()
            if isinstance(e, TimeoutError):  # its own deadline answers for slow SQL first
                raise SandboxInfrastructureError(
                    f"the template did not answer within {timeout}s"
                ) from e
            raise SandboxInfrastructureError(f"the template failed: {type(e).__name__}") from e
        except BaseException:
            os.close(control)
            await process.kill()
            raise
        with contextlib.suppress(Exception):
            process.writer.close()
        if reply.get("status") != "ok":
            os.close(control)
            await process.kill()
            raise InvalidDatabase(str(reply.get("error") or "invalid database")[:2000])
        template._listen(socket.socket(fileno=control))
        return template

    async def close(self) -> None:
        """End the template: it exits when its control socket closes."""
        self.close_socket()
        await self.process.kill()
