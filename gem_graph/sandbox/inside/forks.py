"""Entry points: a fresh single-episode worker, the zygote, templates and their episodes."""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import importlib
import importlib.util
import os
import resource
import select
import signal
import socket
import sys
from typing import Any

from .frames import _dumps, _loads, _read_frame, _safe_text, _send
from .lockdown import _PR_SET_CHILD_SUBREAPER, Lockdown, Unavailable, _libc
from .modules import _install_runtime, _load_file_module
from .monitor import Monitor, prepare_database
from .tool import ToolRunner, _Clock, _ShiftedDateTime

PRELOAD = (
    "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "hashlib",
    "itertools", "json", "math", "random", "re", "statistics", "string", "typing", "uuid",
    "zoneinfo", "encodings.latin_1", "encodings.ascii", "encodings.utf_16", "encodings.utf_32",
    "encodings.cp1252", "encodings.idna", "unicodedata", "_strptime", "calendar", "locale",
    "fractions", "numbers", "operator", "copy", "bisect", "heapq", "textwrap", "difflib",
)  # fmt: skip
"""Modules tool code commonly imports, loaded by the fork server so episodes share them."""


def serve_episode(
    config: dict[str, Any], lock: Lockdown, isolation: dict[str, Any], tracked: Any = None
) -> None:
    """Fork the tool child, seal the monitor, serve the client on fd 0/1; never returns."""
    dbstate = sys.modules["_gg_dbstate"]
    to_tool_r, to_tool_w = os.pipe2(os.O_CLOEXEC)
    from_tool_r, from_tool_w = os.pipe2(os.O_CLOEXEC)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(to_tool_r, 0)
            os.dup2(from_tool_w, 1)
            os.closerange(3, 65536)
            lock.apply_episode(dict(config["limits"]), me)
            os.chdir("/")
            lock.seal_tool()
            _Clock.install()
            ToolRunner(config, 0, 1).serve()
        except BaseException:
            pass
        os._exit(0)
    os.close(to_tool_r)
    os.close(from_tool_w)
    monitor = Monitor(config, isolation, dbstate, tracked)
    monitor.tool_r, monitor.tool_w, monitor.tool_pid = from_tool_r, to_tool_w, pid
    try:
        lock.seal_monitor()
    except Exception as exc:
        _fail_closed(lambda obj: _send(1, obj), f"monitor lockdown failed: {exc}")
    monitor.serve(0, 1)
    monitor.finish()
    os._exit(0)


def _fail_closed(report: Any, reason: str) -> None:
    report({"unavailable": reason})
    os._exit(78)


def run_single(config: dict[str, Any]) -> None:
    """Fresh-worker mode: lock down, then serve one episode on fd 0/1."""
    lock = Lockdown(config)
    try:
        lock.prepare()
        lock.apply_process(dict(config["limits"], cpu=0), os.getppid())
        lock.apply_confinement()
        lock.apply_episode(dict(config["limits"]), os.getppid())
    except Unavailable as exc:
        _fail_closed(lambda obj: _send(1, obj), str(exc))
    except Exception as exc:
        _fail_closed(lambda obj: _send(1, obj), f"lockdown failed: {type(exc).__name__}: {exc}")
    serve_episode(config, lock, dict(lock.isolation, fork_server=False))


def run_zygote(config: dict[str, Any]) -> None:
    """Fork-server mode: lock down without tool code; fork one episode per spawn request."""
    ctl = socket.socket(fileno=int(config["ctl_fd"]))

    def report(obj: Any) -> None:
        ctl.send(_dumps(obj).encode())

    lock = Lockdown(config)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        lock.prepare()
        # Room for its own descriptors plus six per spawn still in flight (a template's
        # socket, two pipes and a pidfd while forking, three in each reply).
        in_flight = int(config.get("spawns_in_flight") or 8)
        nofile = max(64, config["limits"]["nofile"]) + 6 * in_flight
        zygote_limits = dict(config["limits"], cpu=0, nofile=nofile)
        lock.apply_process(zygote_limits, os.getppid())
        lock.apply_confinement()
    except Unavailable as exc:
        _fail_closed(report, str(exc))
    except Exception as exc:
        _fail_closed(report, f"lockdown failed: {type(exc).__name__}: {exc}")
    report({"ready": True, "isolation": lock.isolation, "pid": os.getpid()})
    me = os.getpid()

    def fork_child(request: dict[str, Any], fds: list[int]) -> tuple[int, list[int]]:
        if request.get("template"):
            if len(fds) != 1:
                raise OSError("a template spawn comes with exactly one socket")
            return _fork_with_pipes(
                lambda r, w: _template_main(config, lock, ctl, devnull, r, w, fds[0], me)
            )
        return _fork_with_pipes(
            lambda r, w: _episode_main(config, lock, ctl, devnull, r, w, me, None)
        )

    _serve_forks(ctl, report, fork_child)


def _fork_with_pipes(child: Any) -> tuple[int, list[int]]:
    """Fork `child(req_r, resp_w)`; returns its pid and our ends [req_w, resp_r]."""
    req_r, req_w = os.pipe2(os.O_CLOEXEC)
    resp_r, resp_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        for fd in (req_r, req_w, resp_r, resp_w):
            os.close(fd)
        raise
    if pid == 0:
        child(req_r, resp_w)
        os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    return pid, [req_w, resp_r]


def _serve_forks(ctl: socket.socket, report: Any, fork_child: Any) -> None:
    """A fork server's loop: one child per spawn request, exit and CPU reports; never returns.

    Children that die are reported with their CPU time; processes re-parented here (tool
    processes whose monitor was killed) are reaped too, so none is left as a zombie under
    an init that does not reap.
    """
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), 0, 0, 0)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, str] = {}
    reported = 0.0
    while True:
        readable, _, _ = select.select([ctl.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = children.pop(pid, None)
            cpu = usage.ru_utime + usage.ru_stime
            own = resource.getrusage(resource.RUSAGE_SELF)
            own_cpu = own.ru_utime + own.ru_stime
            spent, reported = own_cpu - reported, own_cpu  # the server's own forking work
            if key is not None:
                report({"exited": key, "status": status, "cpu": cpu, "self_cpu": spent})
            else:  # an adopted tool process
                report({"orphan_cpu": cpu, "self_cpu": spent})
        if ctl.fileno() in readable:
            msg, given, _flags, _addr = socket.recv_fds(ctl, 65536, 1, socket.MSG_CMSG_CLOEXEC)
            if not msg:
                os._exit(0)
            request = _loads(msg)
            key = str(request["spawn"])
            try:
                pid, fds = fork_child(request, given)
            except OSError as exc:
                report({"spawn_failed": key, "error": f"{type(exc).__name__}: {exc}"})
                continue
            finally:
                for fd in given:
                    os.close(fd)
            children[pid] = key
            try:
                fds.insert(0, os.pidfd_open(pid))
                socket.send_fds(ctl, [_dumps({"spawned": key, "pid": pid}).encode()], fds)
            except OSError as exc:  # the child sees end of input on its pipe and exits
                report({"spawn_failed": key, "error": f"{type(exc).__name__}: {exc}"})
            for fd in fds:
                os.close(fd)


def _rewire(
    ctl: socket.socket, req_r: int, resp_w: int, devnull: int, keep: int | None = None
) -> None:
    """In a fresh fork of a fork server: its pipes on fd 0/1, /dev/null on 2, `keep` (if
    any) on 3, every other descriptor closed and the server's signal handling undone."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.dup2(req_r, 0)
    os.dup2(resp_w, 1)
    os.dup2(devnull, 2)
    ctl.detach()
    if keep is not None:
        os.dup2(keep, 3, inheritable=False)
    os.closerange(3 if keep is None else 4, 65536)


def _template_main(
    config: dict[str, Any], lock: Lockdown, ctl: socket.socket, devnull: int,
    req_r: int, resp_w: int, own_ctl: int, zygote: int,
) -> None:  # fmt: skip
    """A template: build one database, then fork an episode per spawn; never returns.

    Every episode forked here starts from the same pristine database and baseline digest
    (copy-on-write), so a replay costs what it changes, not what the database holds.
    """
    try:
        _rewire(ctl, req_r, resp_w, devnull, keep=own_ctl)
        devnull = 2
        server = socket.socket(fileno=3)
        try:
            lock.apply_template(dict(config["limits"]), zygote)
        except Exception as exc:
            _fail_closed(lambda obj: _send(1, obj),
                         f"template lockdown failed: {type(exc).__name__}: {exc}")  # fmt: skip
        _send(1, {"ready": True, "isolation": dict(lock.isolation, fork_server=True)})
        request = _read_frame(0)
        st = sys.modules["_gg_dbstate"]
        try:
            tracked = prepare_database(config, st, dict(request["database"]))
        except st.DatabaseBuildError as exc:
            _send(1, {"status": "invalid_database", "error": _safe_text(str(exc))})
            os._exit(0)
        except MemoryError:
            _send(1, {"status": "invalid_database", "error": "out of memory building the database"})
            os._exit(0)
        _send(1, {"status": "ok"})
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        me = os.getpid()

        def report(obj: Any) -> None:
            server.send(_dumps(obj).encode())

        def fork_child(_request: dict[str, Any], _fds: list[int]) -> tuple[int, list[int]]:
            return _fork_with_pipes(
                lambda r, w: _episode_main(config, lock, server, devnull, r, w, me, tracked)
            )

        _serve_forks(server, report, fork_child)
    except BaseException:
        pass
    os._exit(0)


def _episode_main(
    config: dict[str, Any], lock: Lockdown, ctl: socket.socket, devnull: int,
    req_r: int, resp_w: int, parent: int, tracked: Any,
) -> None:  # fmt: skip
    """A forked episode process (the monitor): rewire fds, tighten, serve; never returns."""
    try:
        _rewire(ctl, req_r, resp_w, devnull)
        try:
            lock.apply_episode(dict(config["limits"]), parent)
        except Exception as exc:
            _fail_closed(lambda obj: _send(1, obj),
                         f"episode lockdown failed: {type(exc).__name__}: {exc}")  # fmt: skip
        serve_episode(config, lock, dict(lock.isolation, fork_server=True), tracked)
    except BaseException:
        pass
    os._exit(0)


def main() -> None:
    mode, config = sys.argv[1], _loads(sys.argv[2])
    if mode == "zygote":  # shared by every forked episode; a fresh worker imports on demand
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    _load_file_module("_gg_dbstate", config["dbstate_path"], package=True)
    _load_file_module("_gg_strictjson", config["strictjson_path"])
    datetime.datetime = _ShiftedDateTime  # type: ignore[misc]
    _install_runtime(config["runtime_path"])
    if mode == "zygote":
        run_zygote(config)
    else:
        run_single(config)
