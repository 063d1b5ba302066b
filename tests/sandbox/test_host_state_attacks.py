"""Tool code must not change host state the filesystem rules do not cover.

Landlock governs opening, creating and removing files, not an inode's metadata, and it
knows nothing about System V IPC, POSIX message queues or inotify. Each test lets tool code
try, on every confined tier, and checks both what the attempt returned and the host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_helpers import (
    HostGuard,
    attempts_of,
    make_db,
    path_state,
    refused,
    sysvipc_ids,
)

from gem_graph.sandbox import Sandbox

KEEP_XATTR = "user.gg_keep"


async def run_attack(sandbox: Sandbox, source: str, ctx: dict[str, Any]) -> tuple[Any, int | None]:
    """The attack's result (it must return normally) and the pid of the worker that ran it."""
    async with await sandbox.open_episode(source, make_db()) as episode:
        loaded = await episode.load()
        assert loaded["ok"], loaded
        result = await episode.call("attack", {"ctx": ctx})
        assert result["status"] == "ok", result
        return result["result"], episode.pid


def xattrs_supported(path: os.PathLike[str]) -> bool:
    try:
        return KEEP_XATTR in os.listxattr(path)
    except OSError:
        return False


# ---------------------------------------------------------------- 1. file metadata

METADATA_ATTACK = """
p, d, uid, gid = ctx['file'], ctx['dir'], ctx['uid'], ctx['gid']
attempt('chmod_setuid_world_writable', lambda: os.chmod(p, 0o4777))
attempt('chmod_dir_world_writable', lambda: os.chmod(d, 0o1777))
attempt('chown_same_owner', lambda: os.chown(p, uid, gid))
attempt('chown_to_nobody', lambda: os.chown(p, 65534, 65534))
attempt('lchown', lambda: os.lchown(p, uid, gid))
attempt('utime_epoch', lambda: os.utime(p, (0, 0)))
attempt('utime_now', lambda: os.utime(p))
attempt('utime_dir', lambda: os.utime(d, (0, 0)))
if ctx['xattrs']:
    attempt('setxattr', lambda: os.setxattr(p, 'user.gg_attack', b'1'))
    attempt('removexattr', lambda: os.removexattr(p, ctx['keep']))

def with_fd(flags, fn):
    def go():
        fd = os.open(p, flags)
        try:
            fn(fd)
        finally:
            os.close(fd)
    return go

attempt('fchmod', with_fd(os.O_RDONLY, lambda fd: os.fchmod(fd, 0o4777)))
attempt('fchown', with_fd(os.O_RDONLY, lambda fd: os.fchown(fd, uid, gid)))
attempt('futimens', with_fd(os.O_RDONLY, lambda fd: os.utime(fd, (0, 0))))
if ctx['xattrs']:
    attempt('fsetxattr', with_fd(os.O_RDONLY, lambda fd: os.setxattr(fd, 'user.gg_attack', b'1')))
    attempt('fremovexattr', with_fd(os.O_RDONLY, lambda fd: os.removexattr(fd, ctx['keep'])))
# O_PATH needs no read right on the file, and the inode is reachable through the fd.
AT_EMPTY_PATH = 0x1000
attempt('opath_chmod_proc_fd', with_fd(os.O_PATH, lambda fd: os.chmod('/proc/self/fd/%d' % fd, 0o4777)))
attempt('opath_fchownat', with_fd(os.O_PATH, lambda fd: checked(libc.fchownat(fd, b'', uid, gid, AT_EMPTY_PATH))))
attempt('opath_utimensat', with_fd(os.O_PATH, lambda fd: checked(libc.utimensat(fd, b'', None, AT_EMPTY_PATH))))
"""  # noqa: E501


async def test_file_metadata_unchanged(sandbox: Sandbox, tier: str, host_guard: HostGuard) -> None:
    victim = host_guard.victim(f"metadata-{tier}.txt", KEEP_XATTR)
    folder = victim.parent
    before = {victim: path_state(victim), folder: path_state(folder)}
    st = victim.stat()
    ctx = {"file": str(victim), "dir": str(folder), "uid": st.st_uid, "gid": st.st_gid,
           "keep": KEEP_XATTR, "xattrs": xattrs_supported(victim)}  # fmt: skip
    outcomes, _ = await run_attack(sandbox, attempts_of(METADATA_ATTACK), ctx)
    after = {path: path_state(path) for path in before}
    # strict hides the host's /tmp altogether; standard must refuse each change.
    allowed = ("PermissionError", "FileNotFoundError") if tier == "strict" else ("PermissionError",)
    assert refused(outcomes, *allowed) == {}, outcomes
    assert after == before, "host file metadata changed"


# ---------------------------------------------------------------- 2. System V IPC, mqueues

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.shmdt.argtypes = (ctypes.c_void_p,)
IPC_CREAT, IPC_EXCL, IPC_RMID, SHM_RDONLY = 0o1000, 0o2000, 0, 0o10000
SHM_FAILED = ctypes.c_void_p(-1).value


def _mq_function(name: str) -> Any:
    for library in ("libc.so.6", "librt.so.1"):
        with contextlib.suppress(OSError, AttributeError):
            return getattr(ctypes.CDLL(library, use_errno=True), name)
    return None


def mqueue_exists(name: str) -> bool:
    mq_open = _mq_function("mq_open")
    if mq_open is None:
        return False
    fd = mq_open(name.encode(), os.O_RDONLY)
    if fd < 0:
        return False
    os.close(fd)  # an mqd_t is a file descriptor on Linux
    return True


def remove_ipc_objects(
    new: dict[str, set[tuple[int, int]]], keys: set[int], pid: int | None
) -> None:
    """Remove what the attack created: objects with our keys, or private segments it made."""
    shm_creators = {}
    with contextlib.suppress(OSError), open("/proc/sysvipc/shm") as fh:
        for line in fh.read().splitlines()[1:]:
            fields = line.split()
            shm_creators[int(fields[1])] = int(fields[4])
    for key, ident in new["shm"]:
        if key in keys or shm_creators.get(ident) == pid:
            _libc.shmctl(ident, IPC_RMID, None)
    for key, ident in new["msg"]:
        if key in keys:
            _libc.msgctl(ident, IPC_RMID, None)
    for key, ident in new["sem"]:
        if key in keys:
            _libc.semctl(ident, 0, IPC_RMID)


IPC_ATTACK = """
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
IPC_CREAT, IPC_EXCL = 0o1000, 0o2000
k = ctx['keys']

def attach(shmid):
    addr = libc.shmat(shmid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), 'shmat')

attempt('shmget_private', lambda: checked(libc.shmget(0, 4096, IPC_CREAT | 0o600)))
attempt('shmget_keyed', lambda: checked(libc.shmget(k[0], 4096, IPC_CREAT | IPC_EXCL | 0o666)))
attempt('shmget_shmat', lambda: attach(checked(libc.shmget(k[1], 4096, IPC_CREAT | IPC_EXCL | 0o600))))
attempt('msgget', lambda: checked(libc.msgget(k[2], IPC_CREAT | IPC_EXCL | 0o600)))
attempt('semget', lambda: checked(libc.semget(k[3], 1, IPC_CREAT | IPC_EXCL | 0o600)))

def mq_open():
    fn = None
    for name in ('libc.so.6', 'librt.so.1'):
        try:
            fn = getattr(ctypes.CDLL(name, use_errno=True), 'mq_open')
            break
        except (OSError, AttributeError):
            pass
    if fn is None:
        raise OSError(38, 'no mq_open')
    checked(fn(ctx['mq_name'].encode(), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, None))

attempt('mq_open', mq_open)
"""  # noqa: E501


@pytest.fixture
def ipc_keys() -> Iterator[tuple[list[int], str]]:
    """Fresh keys and a queue name for the attack; whatever it created is removed after."""
    keys = [random.randrange(0x10000000, 0x7FFFFFFF) for _ in range(4)]
    name = f"/gg_attack_{os.getpid()}_{random.randrange(1 << 30)}"
    yield keys, name
    unlink = _mq_function("mq_unlink")
    if unlink is not None:
        unlink(name.encode())


async def test_sysv_ipc_and_mqueues_refused(
    sandbox: Sandbox, ipc_keys: tuple[list[int], str]
) -> None:
    keys, mq_name = ipc_keys
    before = sysvipc_ids()
    pid = None
    try:
        outcomes, pid = await run_attack(
            sandbox, attempts_of(IPC_ATTACK), {"keys": keys, "mq_name": mq_name}
        )
        after = sysvipc_ids()
        created_mq = mqueue_exists(mq_name)
    finally:
        now = sysvipc_ids()
        remove_ipc_objects({k: now[k] - before[k] for k in now}, set(keys), pid)
    assert after == before, "tool code created System V IPC objects on the host"
    assert not created_mq, "tool code created a POSIX message queue on the host"
    # Refused outright (a private IPC namespace alone is not enough); ENOSYS/EINVAL count
    # only because nothing was created, which the host check above established.
    assert refused(outcomes, "PermissionError", "OSError:ENOSYS", "OSError:EINVAL") == {}, outcomes


HOST_SEGMENT_ATTACK = """
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
seen = []

def read(shmid):
    addr = libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise OSError(ctypes.get_errno(), 'shmat')
    seen.append(ctypes.string_at(addr, 64).split(b'\\0')[0].decode('latin-1'))

attempt('attach_by_key', lambda: read(checked(libc.shmget(ctx['key'], 0, 0))))
attempt('attach_by_id', lambda: read(ctx['shmid']))
attempt('stat_by_id', lambda: checked(libc.shmctl(ctx['shmid'], 2, ctypes.create_string_buffer(256))))
out['seen'] = repr(seen)
"""  # noqa: E501


@pytest.fixture
def host_segment() -> Iterator[tuple[int, int, str]]:
    """A keyed, world-readable shared memory segment of the host holding a canary."""
    canary = f"host-shm-canary-{random.randrange(1 << 40)}"
    key = random.randrange(0x10000000, 0x7FFFFFFF)
    shmid = _libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o644)
    if shmid < 0:
        pytest.skip(f"cannot create a System V segment here: {os.strerror(ctypes.get_errno())}")
    try:
        addr = _libc.shmat(shmid, None, 0)
        assert addr != SHM_FAILED
        ctypes.memmove(addr, canary.encode() + b"\0", len(canary) + 1)
        _libc.shmdt(addr)
        yield key, shmid, canary
    finally:
        _libc.shmctl(shmid, IPC_RMID, None)


async def test_host_shm_segment_unreachable(
    sandbox: Sandbox, host_segment: tuple[int, int, str]
) -> None:
    key, shmid, canary = host_segment
    outcomes, _ = await run_attack(
        sandbox, attempts_of(HOST_SEGMENT_ATTACK), {"key": key, "shmid": shmid}
    )
    seen = outcomes.pop("seen")
    assert canary not in seen, "tool code read the host's shared memory"
    assert refused(outcomes, "PermissionError", "FileNotFoundError", "OSError") == {}, outcomes


# ---------------------------------------------------------------- 3. inotify / fanotify

NOTIFY_ATTACK = """
import platform
attempt('inotify_init1', lambda: checked(libc.inotify_init1(os.O_CLOEXEC)))
attempt('inotify_init1_nonblock', lambda: checked(libc.inotify_init1(os.O_NONBLOCK)))
if platform.machine() == 'x86_64':
    attempt('inotify_init_syscall', lambda: checked(libc.syscall(253)))  # the old inotify_init
attempt('fanotify_init', lambda: checked(libc.fanotify_init(0, os.O_RDONLY)))
attempt('fanotify_init_report_fid', lambda: checked(libc.fanotify_init(0x200, os.O_RDONLY)))
"""


async def test_inotify_and_fanotify_refused(sandbox: Sandbox) -> None:
    outcomes, _ = await run_attack(sandbox, attempts_of(NOTIFY_ATTACK), {})
    assert refused(outcomes, "PermissionError:EPERM") == {}, outcomes
