"""Landlock through raw syscalls (stdlib ctypes only; loaded inside the sandbox worker).

Rules grant read-only access (READ_FILE, READ_DIR) beneath a few paths. Every other right the
kernel's ABI knows about is handled and therefore denied: execute, write, make/remove,
truncate, device ioctls, TCP bind/connect (ABI >= 4), and signals / abstract unix sockets
leaving the domain (ABI >= 6).
"""

from __future__ import annotations

import ctypes
import os
import platform

# Landlock syscalls have the same number on every architecture (added after the unification).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
_FS_ABI1 = (1 << 13) - 1  # EXECUTE … MAKE_SYM
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class LandlockError(OSError):
    """Landlock is missing or a rule could not be applied."""


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    if platform.system() != "Linux":
        return 0
    res = _syscall(
        ctypes.c_long(_SYS_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_CREATE_RULESET_VERSION),
    )
    return int(res) if res > 0 else 0


def _check(res: int, what: str) -> int:
    if res < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock {what}: {os.strerror(err)}")
    return res


def _ruleset_size(abi: int) -> int:
    if abi >= 6:
        return 24
    return 16 if abi >= 4 else 8


def handled_fs(abi: int) -> int:
    """All filesystem rights this ABI can restrict."""
    rights = _FS_ABI1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(read_dirs: list[str], read_files: list[str], *, abi: int | None = None) -> int:
    """Confine this thread (and its future children) for good; return the ABI used.

    Must run after PR_SET_NO_NEW_PRIVS and before any untrusted code. Missing paths are skipped.
    """
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise LandlockError(0, "landlock is not supported by this kernel")
    attr = _RulesetAttr(
        handled_fs(abi),
        (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    ruleset = _check(
        _syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            ctypes.byref(attr),
            ctypes.c_size_t(_ruleset_size(abi)),
            ctypes.c_uint32(0),
        ),
        "create_ruleset",
    )
    try:
        for path, rights in [(p, READ_FILE | READ_DIR) for p in read_dirs] + [
            (p, READ_FILE) for p in read_files
        ]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= _FILE_RIGHTS
                rule = _PathBeneathAttr(rights, fd)
                _check(
                    _syscall(
                        ctypes.c_long(_SYS_ADD_RULE),
                        ctypes.c_int(ruleset),
                        ctypes.c_int(_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    ),
                    f"add_rule {path}",
                )
            finally:
                os.close(fd)
        _check(
            _syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "restrict_self",
        )
    finally:
        os.close(ruleset)
    return abi


def scope_self(abi: int) -> bool:
    """Add a layer that only scopes signals and abstract sockets (isolates forked siblings)."""
    if abi < 6:
        return False
    attr = _RulesetAttr(0, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    ruleset = _check(
        _syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            ctypes.byref(attr),
            ctypes.c_size_t(24),
            ctypes.c_uint32(0),
        ),
        "create_ruleset",
    )
    try:
        _check(
            _syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "restrict_self",
        )
    finally:
        os.close(ruleset)
    return True
