"""What isolation this machine can give, probed once and cached."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from typing import Any

from gem_graph.sandbox import landlock
from gem_graph.sandbox.launch import bwrap_argv, python_executable


def seccomp_binding_dir() -> str | None:
    """Directory holding the `pyseccomp` module, which the worker imports explicitly."""
    spec = importlib.util.find_spec("pyseccomp")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(spec.origin)


def _seccomp_status() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, "seccomp needs Linux"
    if seccomp_binding_dir() is None:
        return False, "the pyseccomp binding is not installed"
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError as exc:
        return False, f"libseccomp.so.2 cannot be loaded: {exc}"
    try:
        with open("/proc/self/status") as fh:
            if not any(line.startswith("Seccomp:") for line in fh):
                return False, "kernel without seccomp"
    except OSError:
        pass
    return True, "ok"


def _bwrap_status() -> tuple[str | None, str]:
    path = shutil.which("bwrap")
    if path is None:
        return None, (
            "bubblewrap (bwrap) is not installed; install it with your package manager "
            "(Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
        )
    argv = [*bwrap_argv(path), python_executable(), "-I", "-S", "-c", "pass"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"bwrap failed: {exc}"
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[:300]
        return None, f"bwrap cannot create user/network namespaces here: {err}"
    return path, "ok"


@functools.cache
def probe() -> dict[str, Any]:
    """Cached description of the available layers and tiers.

    `tiers` maps each tier to True, or to a string explaining why it is unavailable.
    """
    abi = landlock.abi_version()
    seccomp_ok, seccomp_reason = _seccomp_status()
    bwrap_path, bwrap_reason = _bwrap_status() if sys.platform.startswith("linux") else (None, "")
    pidfd = hasattr(os, "pidfd_open")
    if pidfd:
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            pidfd = False
    standard: bool | str = True
    if abi < 1:
        standard = "Landlock is not available (kernel without Landlock, or disabled)"
    elif not seccomp_ok:
        standard = seccomp_reason
    strict: bool | str = standard if standard is not True else True
    if strict is True and bwrap_path is None:
        strict = bwrap_reason
    return {
        "landlock_abi": abi,
        "seccomp": seccomp_ok,
        "seccomp_reason": seccomp_reason,
        "seccomp_binding": seccomp_binding_dir(),
        "bwrap": bwrap_path,
        "userns": bwrap_path is not None,
        "bwrap_reason": bwrap_reason,
        "pidfd": pidfd,
        "tiers": {"strict": strict, "standard": standard, "none": True},
    }
