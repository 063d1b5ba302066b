"""The isolation layers a worker applies to itself, and the record of which applied."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import types
from typing import Any

from .modules import _load_file_module

NOBODY = 65534
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_CHILD_SUBREAPER = 36
_CAP_DAC_READ_SEARCH = 1 << 2
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CLONE_NEWIPC = 0x08000000
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
TEMPLATE_CPU_FACTOR = 10
_libc = ctypes.CDLL(None, use_errno=True)
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The sandbox package's directory, where seccomp.py and landlock.py live."""


class Unavailable(Exception):
    """A requested isolation layer could not be applied."""


def _import_seccomp_binding(directory: str | None) -> types.ModuleType:
    """Import pyseccomp from its own directory only, without running `ldconfig`."""
    if not directory or not os.path.isfile(os.path.join(directory, "pyseccomp.py")):
        raise Unavailable(f"seccomp binding (pyseccomp) not found in {directory!r}")
    import ctypes.util

    real = ctypes.util.find_library
    known = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}
    ctypes.util.find_library = lambda name: known.get(name) or real(name)
    sys.path.insert(0, directory)
    try:
        import pyseccomp
    except Exception as exc:
        raise Unavailable(f"seccomp binding unusable: {exc}") from exc
    finally:
        sys.path.remove(directory)
        ctypes.util.find_library = real
    return pyseccomp


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise Unavailable(f"prctl({option}) failed: {os.strerror(err)}")


def _drop_capabilities(keep: int = 0) -> bool:
    """Empty the bounding, ambient and inheritable sets; keep only `keep` (a mask) in effect."""
    for cap in range(64):
        failed = _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0
        if failed and ctypes.get_errno() == 22:  # EINVAL: past the last capability
            break
    _libc.prctl(_PR_CAP_AMBIENT, ctypes.c_ulong(_PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    nr = _SYS_CAPSET.get(os.uname().machine)
    if nr is None:
        return False
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)(keep, keep, 0, 0, 0, 0)  # effective, permitted, inheritable
    return bool(_libc.syscall(ctypes.c_long(nr), ctypes.byref(header), ctypes.byref(data)) == 0)


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def _set_death_signal(expected_parent: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:  # the parent died before the prctl took effect
        os._exit(70)


def _private_ipc() -> bool:
    """A new, empty SysV IPC namespace (needs CAP_SYS_ADMIN, i.e. root before the drop)."""
    return bool(_libc.unshare(ctypes.c_int(_CLONE_NEWIPC)) == 0)


def _drop_to_nobody() -> bool:
    """As root: become `nobody`, so host files owned by root are no longer ours to change.

    CAP_DAC_READ_SEARCH survives the change, so the interpreter can still read its standard
    library where that lives in a private home (pyenv under /root); Landlock decides what
    may be read, and every other capability goes.
    """
    if os.geteuid() != 0:
        return False
    _prctl(_PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _prctl(_PR_SET_KEEPCAPS, 0)
    return os.geteuid() == NOBODY


class Lockdown:
    """Applies the isolation layers requested by the config and records what applied."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.isolation: dict[str, Any] = {
            "tier": config["tier"],
            "landlock": 0,
            "seccomp": False,
            "bwrap": bool(config.get("bwrap")),
            "rlimits": False,
            "no_new_privs": False,
            "caps_dropped": False,
            "ipc_namespace": bool(config.get("bwrap")),
            "uid": os.geteuid(),
            "monitor": True,
        }
        self.seccomp_module: types.ModuleType | None = None
        self.seccomp_rules: types.ModuleType | None = None
        self.child_filter: Any = None
        self.tool_filter: Any = None
        self.landlock: types.ModuleType | None = None

    def prepare(self) -> None:
        """Imports only: nothing is restricted yet."""
        broken = set(self.config.get("break", ()))
        if self.config["seccomp"]:
            directory = None if "seccomp" in broken else self.config.get("seccomp_dir")
            self.seccomp_module = _import_seccomp_binding(directory)
            self.seccomp_rules = _load_file_module("_gg_seccomp", os.path.join(HERE, "seccomp.py"))
            sc, rules = self.seccomp_module, self.seccomp_rules
            # Compiled once here; every forked monitor and tool process loads them as is.
            self.child_filter = rules.CompiledFilter(rules.child_filter(sc, rules.PID_PLACEHOLDER))
            self.tool_filter = rules.CompiledFilter(rules.tool_filter(sc))
        if self.config["landlock"]:
            self.landlock = _load_file_module("_gg_landlock", os.path.join(HERE, "landlock.py"))
            if "landlock" in broken:
                self.landlock.abi_version = lambda: 0  # type: ignore[attr-defined]

    def apply_process(self, limits: dict[str, int], parent: int) -> None:
        """IPC namespace, uid drop, rlimits, prctl and capabilities for this process.

        The uid changes first: changing credentials clears the death signal and
        the dumpable flag, which are set after it.
        """
        if self.config["tier"] != "none" and os.geteuid() == 0 and not self.config.get("bwrap"):
            # Under bwrap the user, IPC and mount namespaces already do this job.
            self.isolation["ipc_namespace"] = _private_ipc()
            _drop_to_nobody()
        self.isolation["uid"] = os.geteuid()
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_FSIZE, 0)
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        _set_limit(resource.RLIMIT_MSGQUEUE, 0)
        if limits.get("cpu"):
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        self.isolation["rlimits"] = True
        _set_death_signal(parent)
        _prctl(_PR_SET_DUMPABLE, 0)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        self.isolation["no_new_privs"] = True
        keep = _CAP_DAC_READ_SEARCH if self.isolation["uid"] == NOBODY else 0
        self.isolation["caps_dropped"] = _drop_capabilities(keep)

    def apply_confinement(self) -> None:
        """Landlock and the base seccomp filter; raises Unavailable when a requested one fails."""
        if self.landlock is not None:
            abi = self.landlock.abi_version()
            if abi < 1:
                raise Unavailable("landlock is not supported by this kernel")
            try:
                self.isolation["landlock"] = self.landlock.restrict(
                    self.config["read_dirs"], self.config["read_files"], abi=abi
                )
            except OSError as exc:
                raise Unavailable(f"landlock could not be applied: {exc}") from exc
        if self.seccomp_module is not None and self.seccomp_rules is not None:
            try:
                self.seccomp_rules.base_filter(self.seccomp_module).load()
            except Exception as exc:
                raise Unavailable(f"seccomp filter could not be loaded: {exc}") from exc
            self.isolation["seccomp"] = True

    def apply_episode(self, limits: dict[str, int], parent: int) -> None:
        """In a forked episode process: its own limits, death signal and scope layer."""
        _set_death_signal(parent)
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        _set_limit(resource.RLIMIT_NOFILE, limits["nofile"])
        if self.landlock is not None and self.isolation["landlock"]:
            self.landlock.scope_self(self.isolation["landlock"])

    def apply_template(self, limits: dict[str, int], parent: int) -> None:
        """In a forked template: a memory cap for its database and the scope layer.

        Its CPU cap is a multiple of an episode's: it builds once, then only forks.
        """
        _set_death_signal(parent)
        cpu = limits["cpu"] * TEMPLATE_CPU_FACTOR
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        _set_limit(resource.RLIMIT_AS, limits["as_bytes"])
        if self.landlock is not None and self.isolation["landlock"]:
            self.landlock.scope_self(self.isolation["landlock"])

    def seal_monitor(self) -> None:
        """The monitor, once its tool child exists: no more processes, no signals out."""
        if self.child_filter is not None:
            self.child_filter.load(os.getpid())

    def seal_tool(self) -> None:
        """The tool child: the episode filter plus no threads, no new session, no prctl."""
        if self.child_filter is not None and self.tool_filter is not None:
            self.child_filter.load(os.getpid())
            self.tool_filter.load()
