"""Handles on worker processes: a fresh `python -I -S` worker, or a child of a fork server.

Both expose the same surface to an episode: framed pipe I/O, a hard kill, and a
description of how the process ended. The fork servers' clients live in `forkserver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
from typing import TYPE_CHECKING, Any

from gem_graph.sandbox.errors import SandboxInfrastructureError, SandboxUnavailable
from gem_graph.sandbox.launch import MINIMAL_ENV, worker_argv

if TYPE_CHECKING:
    from gem_graph.sandbox.forkserver import ForkServer

HEADER = struct.Struct(">I")
READY_TIMEOUT_S = 10.0
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

    def __init__(self, server: ForkServer, key: str, pid: int, pidfd: int) -> None:
        self.server = server
        self.key = key
        self.nspid = pid
        self.pidfd = pidfd
        self.pid = _pid_from_pidfd(pidfd)
        self.serves: ForkServer | None = None
        """The fork server this child runs, when it is one (a template); its CPU reports."""
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
        return not self.server.alive


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
