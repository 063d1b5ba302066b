"""Seccomp denylists for the sandbox worker, built with the `pyseccomp` binding.

Stdlib only apart from the binding, which the worker imports from an explicit directory and
hands in as a module. Three filters stack:
- `base`: loaded by the zygote (and by a fresh worker): no exec, no new sockets, no ptrace,
  no namespaces or mounts, no kernel-admin calls, and nothing that changes a host file's
  metadata or reaches host-wide state Landlock does not cover (chmod/chown/utime/xattrs,
  SysV IPC, POSIX message queues, inotify/fanotify/dnotify, file locks and leases, SIGIO
  ownership). Syscalls newer than this list knows are refused. Fork stays allowed so a
  zygote can fork.
- `child`: loaded by each monitor and tool process on top: no fork/clone of processes, no
  signals except to itself, no pidfds, no socket messaging, no raising or setting limits,
  no scheduling of other processes.
- `tool`: the tool process only: no threads at all, no new session or process group, and
  no prctl that would undo the death signal or the dumpable flag.
Denied calls fail with EPERM (ENOSYS for clone3 and unknown syscalls).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from types import ModuleType
from typing import Any

CLONE_THREAD = 0x00010000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

BASE_DENY = (
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
    "process_madvise", "pidfd_getfd", "kcmp",
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "syslog", "acct", "personality", "mknod", "mknodat",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "quotactl", "name_to_handle_at", "open_by_handle_at",
    "iopl", "ioperm", "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "uselib", "fanotify_init", "lookup_dcookie",
    "setpriority", "ioprio_set", "sched_setscheduler", "sched_setparam", "sched_setattr",
    "migrate_pages", "move_pages", "kill", "tkill",
    # metadata of host files (Landlock governs opening and writing, not these)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr",
    # host-wide state outside the file system
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "flock",
)  # fmt: skip
NEWER_SYSCALLS = range(463, 600)
"""Numbers past `fchmodat2`'s generation (setxattrat, removexattrat, file_setattr, …),
unified across architectures and unknown to older libseccomp: refused wholesale."""
FCNTL_DENY = (6, 7, 8, 10, 15, 37, 38, 1024, 1026)
"""F_SETLK, F_SETLKW, F_SETOWN, F_SETSIG, F_SETOWN_EX, F_OFD_SETLK(W), F_SETLEASE, F_NOTIFY."""
IOCTL_DENY = (TIOCSTI, TIOCLINUX, 0x8901, 0x8902)
"""Terminal injection, and FIOSETOWN/SIOCSPGRP (signals to another process)."""
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_PTRACER = 0x59616D61

CHILD_DENY = (
    "fork", "vfork", "pidfd_open", "pidfd_send_signal", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "sendto", "recvfrom",
    "setrlimit",
)  # fmt: skip


def _deny(flt: Any, sc: ModuleType, action: int, name: str, *args: Any) -> None:
    """Add one rule; a syscall this architecture does not have is skipped."""
    try:
        nr = sc.resolve_syscall(sc.system_arch(), name)
    except Exception:
        return
    if nr < 0:
        return
    flt.add_rule(action, name, *args)


def base_filter(sc: ModuleType) -> Any:
    """The zygote's filter: everything dangerous except fork."""
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in BASE_DENY:
        _deny(flt, sc, eperm, name)
    for request in IOCTL_DENY:
        _deny(flt, sc, eperm, "ioctl", sc.Arg(1, sc.EQ, request))
    for command in FCNTL_DENY:
        _deny(flt, sc, eperm, "fcntl", sc.Arg(1, sc.EQ, command))
    enosys = sc.ERRNO(errno.ENOSYS)
    for number in NEWER_SYSCALLS:
        flt.add_rule(enosys, number)
    return flt


def child_filter(sc: ModuleType, pid: int) -> Any:
    """The per-episode filter: no processes, no signals to others, limits frozen."""
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in CHILD_DENY:
        _deny(flt, sc, eperm, name)
    _deny(flt, sc, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    _deny(flt, sc, sc.ERRNO(errno.ENOSYS), "clone3")
    _deny(flt, sc, eperm, "tgkill", sc.Arg(0, sc.NE, pid))
    _deny(flt, sc, eperm, "prlimit64", sc.Arg(2, sc.NE, 0))
    _deny(flt, sc, eperm, "sched_setaffinity", sc.Arg(0, sc.NE, 0))
    return flt


def tool_filter(sc: ModuleType) -> Any:
    """The tool process: single-threaded, in its monitor's session, death signal kept."""
    flt = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in ("clone", "setsid", "setpgid"):
        _deny(flt, sc, eperm, name)
    for option in (PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_PTRACER):
        _deny(flt, sc, eperm, "prctl", sc.Arg(0, sc.EQ, option))
    return flt


PID_PLACEHOLDER = 0x5A5A5A5A
"""Stands for the episode's pid in a compiled child filter (above any Linux pid_max)."""
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_INSTRUCTION = struct.Struct("=HBBI")


class CompiledFilter:
    """A filter exported to BPF once, so each episode loads it with one prctl.

    libseccomp spends milliseconds generating a program; a forked episode would pay that
    twice (monitor and tool process). `PID_PLACEHOLDER` constants are patched at load.
    """

    def __init__(self, flt: Any) -> None:
        read, write = os.pipe()
        try:
            flt.export_bpf(_Descriptor(write))
            os.close(write)
            write = -1
            chunks = []
            while chunk := os.read(read, 65536):
                chunks.append(chunk)
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)
        self.program = b"".join(chunks)
        if not self.program or len(self.program) % _INSTRUCTION.size:
            raise OSError("libseccomp exported no usable BPF program")
        self.holes = [
            offset
            for offset in range(0, len(self.program), _INSTRUCTION.size)
            if _INSTRUCTION.unpack_from(self.program, offset)[3] == PID_PLACEHOLDER
        ]

    def load(self, pid: int | None = None) -> None:
        """Install the filter on this process (no_new_privs must already be set)."""
        program = bytearray(self.program)
        for offset in self.holes:
            if pid is None:
                raise ValueError("this filter needs the pid it is loaded for")
            code, jt, jf, _ = _INSTRUCTION.unpack_from(program, offset)
            _INSTRUCTION.pack_into(program, offset, code, jt, jf, pid)
        buffer = (ctypes.c_char * len(program)).from_buffer(program)
        fprog = _SockFprog(len(program) // _INSTRUCTION.size, ctypes.addressof(buffer))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"loading a seccomp filter failed: {os.strerror(err)}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Descriptor:
    """What `export_bpf` writes to: anything with a `fileno()`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
