"""Handles on worker processes: a fresh `python -I -S` worker, or a child of the zygote.

Both expose the same surface to an episode: framed pipe I/O, a hard kill, and a
description of how the process ended. The zygote client lives here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import struct
from typing import Any

from gem_graph.sandbox.errors import SandboxInfrastructureError, SandboxUnavailable
from gem_graph.sandbox.launch import MINIMAL_ENV, worker_argv

HEADER = struct.Struct(">I")
READY_TIMEOUT_S = 10.0
MAX_SPAWNS_IN_FLIGHT = 8
"""Spawn requests the fork server may be working on at once. Each reply carries three
descriptors, and descriptors in flight count against the sender's open-file limit, so
the bound keeps the fork server's replies deliverable however busy the client is."""
EXIT_NOTICE_TIMEOUT_S = 2.0


class FrameTooLarge(Exception):
    """The worker announced a frame above the cap; it is never read."""


class BadFrame(Exception):
    """The worker wrote something that is not a JSON object frame."""


async def read_frame(reader: asyncio.StreamReader, cap: int) -> dict[str, Any]:
    """Read one length-prefixed JSON object, refusing frames over `cap` bytes."""
    (size,) = HEADER.unpack(await reader.readexactly(4))
    if size > cap:
        raise FrameTooLarge(f"reply of {size} bytes exceeds the cap of {cap}")
    body = await reader.readexactly(size)
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadFrame(f"reply is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadFrame("reply is not a JSON object")
    return value


def encode_frame(obj: Any) -> bytes:
    payload = json.dumps(obj).encode()
    return HEADER.pack(len(payload)) + payload


def describe_exit(status: int | None, cpu: float | None, cpu_limit: int) -> tuple[str, str]:
    """Map a wait status to (CallResult status, message)."""
    if status is None:
        return "crashed", "worker died (exit status unknown)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and (cpu or 0) >= cpu_limit - 0.05):
            return "cpu_limit", f"worker exceeded its CPU limit of {cpu_limit}s ({name})"
        return "crashed", f"worker killed by signal {name}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return "crashed", f"worker exited with code {code}"


class WorkerHandle:
    """Common surface of a worker process serving one episode."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int | None = None
    isolation: dict[str, Any]

    async def kill(self) -> None:
        raise NotImplementedError

    async def exit_info(self) -> tuple[int | None, float | None]:
        """Wait status and CPU seconds once the process is gone (None when unknown)."""
        raise NotImplementedError

    def infrastructure_lost(self) -> bool:
        """True when what the worker depends on (the fork server) is gone."""
        return False

    async def await_ready(self) -> dict[str, Any]:
        """The worker's first frame: what isolation it applied, or why it could not."""
        try:
            frame = await asyncio.wait_for(read_frame(self.reader, 65536), READY_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, FrameTooLarge, BadFrame) as e:
            await self.kill()
            status, cpu = await self.exit_info()
            raise SandboxInfrastructureError(
                f"worker failed to start ({type(e).__name__}); {describe_exit(status, cpu, 0)[1]}"
            ) from e
        if not frame.get("ready"):
            await self.kill()
            raise SandboxUnavailable(str(frame.get("unavailable") or "worker refused to start"))
        self.isolation = dict(frame.get("isolation") or {})
        return self.isolation


async def _pipe_streams(
    read_fd: int, write_fd: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 16)
    rfile = os.fdopen(read_fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), rfile)
    wfile = os.fdopen(write_fd, "wb", buffering=0)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(), wfile
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


class FreshWorker(WorkerHandle):
    """A `python -I -S` worker started for one episode (session leader of its own group)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        assert proc.stdout is not None and proc.stdin is not None
        self.reader = proc.stdout
        self.writer = proc.stdin

    @classmethod
    async def start(cls, config: dict[str, Any], bwrap: str | None, cwd: str) -> FreshWorker:
        proc = await asyncio.create_subprocess_exec(
            *worker_argv("single", config, bwrap),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(MINIMAL_ENV),
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
            limit=1 << 16,
        )
        return cls(proc)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), EXIT_NOTICE_TIMEOUT_S)

    async def exit_info(self) -> tuple[int | None, float | None]:
        try:
            code = await asyncio.wait_for(self.proc.wait(), EXIT_NOTICE_TIMEOUT_S)
        except TimeoutError:
            return None, None
        if code < 0:
            return -code, None  # a raw wait status for "killed by signal -code"
        return code << 8, None


class ForkedWorker(WorkerHandle):
    """A child forked by the zygote; killed through its pidfd (no pid-reuse race)."""

    def __init__(self, zygote: Zygote, key: str, pid: int, pidfd: int) -> None:
        self.zygote = zygote
        self.key = key
        self.nspid = pid
        self.pidfd = pidfd
        self.pid = _pid_from_pidfd(pidfd)
        self.exited: asyncio.Future[tuple[int | None, float | None]] = (
            asyncio.get_running_loop().create_future()
        )

    async def kill(self) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = -1
        with contextlib.suppress(Exception):
            self.writer.close()

    async def exit_info(self) -> tuple[int | None, float | None]:
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), EXIT_NOTICE_TIMEOUT_S)
        except TimeoutError:
            return None, None

    def infrastructure_lost(self) -> bool:
        return not self.zygote.alive


def _pid_from_pidfd(pidfd: int) -> int | None:
    """The child's pid in our namespace (the zygote may live in its own pid namespace)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as fh:
            for line in fh:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Zygote:
    """Client of the fork server: starts it, asks for children, routes exit notices."""

    def __init__(self, config: dict[str, Any], bwrap: str | None, cwd: str) -> None:
        self.config = config
        self.bwrap = bwrap
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self.isolation: dict[str, Any] = {}
        self.alive = False
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._spawns: dict[str, asyncio.Future[ForkedWorker]] = {}
        self._children: dict[str, ForkedWorker] = {}
        self._keys = itertools.count(1)
        self._in_flight = asyncio.Semaphore(MAX_SPAWNS_IN_FLIGHT)
        self.reaped_cpu_s = 0.0
        """CPU seconds of the episodes that have ended (each with its tool process)."""

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
        parent.setblocking(False)
        self.sock = parent
        self._ready = loop.create_future()
        loop.add_reader(parent.fileno(), self._on_readable)
        try:
            first = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except TimeoutError:
            first = {"unavailable": "the fork server did not start in time"}
        if not first.get("ready"):
            await self.close()
            raise SandboxUnavailable(str(first.get("unavailable") or "fork server failed"))
        self.isolation = dict(first.get("isolation") or {})
        self.alive = True

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
                self._on_zygote_gone()
                return
            self._dispatch(json.loads(msg), fds)

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(msg)
            return
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
            self._attach(handle, fds[2], fds[1])
        elif "orphan_cpu" in msg:
            self.reaped_cpu_s += float(msg["orphan_cpu"] or 0.0)
        elif "exited" in msg:
            self.reaped_cpu_s += float(msg.get("cpu") or 0.0)
            gone = self._children.pop(str(msg["exited"]), None)
            if gone is not None and not gone.exited.done():
                gone.exited.set_result((int(msg["status"]), float(msg["cpu"])))

    def _attach(self, handle: ForkedWorker, read_fd: int, write_fd: int) -> None:
        async def connect() -> None:
            handle.reader, handle.writer = await _pipe_streams(read_fd, write_fd)

        handle.connected = asyncio.ensure_future(connect())  # type: ignore[attr-defined]

    def _on_zygote_gone(self) -> None:
        self.alive = False
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if self._ready is not None and not self._ready.done():
            self._ready.set_result({"unavailable": "the fork server exited during start-up"})
        for fut in self._spawns.values():
            if not fut.done():
                fut.set_exception(SandboxInfrastructureError("the fork server exited"))
        self._spawns.clear()
        for handle in self._children.values():
            if not handle.exited.done():
                handle.exited.set_result((None, None))
        self._children.clear()

    async def spawn(self) -> ForkedWorker:
        """One new episode process; `SandboxInfrastructureError` when the server fails."""
        async with self._in_flight:
            if not self.alive or self.sock is None:
                raise SandboxInfrastructureError("the fork server is not running")
            loop = asyncio.get_running_loop()
            key = str(next(self._keys))
            fut: asyncio.Future[ForkedWorker] = loop.create_future()
            self._spawns[key] = fut
            try:
                await loop.sock_sendall(self.sock, json.dumps({"spawn": key}).encode())
                handle = await asyncio.wait_for(fut, READY_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                self._spawns.pop(key, None)
                raise SandboxInfrastructureError(
                    f"the fork server did not answer a spawn ({type(exc).__name__})"
                ) from exc
        await handle.connected  # type: ignore[attr-defined]
        return handle

    async def close(self) -> None:
        """Kill the zygote's whole process group (its children die with it)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 5)
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self._on_zygote_gone()
