"""Seccomp denylists for the sandbox worker, built with the `pyseccomp` binding.

Stdlib only apart from the binding, which the worker imports from an explicit directory and
hands in as a module. Two filters stack:
- `base`: loaded by the zygote (and by a fresh worker): no exec, no new sockets, no ptrace,
  no namespaces or mounts, no kernel-admin calls. Fork stays allowed so a zygote can fork.
- `child`: loaded by each episode's process on top: no fork/clone of processes, no signals
  except to itself, no pidfds, no socket messaging, no raising or setting limits, no
  scheduling of other processes.
Denied calls fail with EPERM (ENOSYS for clone3, so libc falls back to clone for threads).
"""

from __future__ import annotations

import errno
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
)  # fmt: skip

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
    for request in (TIOCSTI, TIOCLINUX):
        _deny(flt, sc, eperm, "ioctl", sc.Arg(1, sc.EQ, request))
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
