"""How a worker process is started: interpreter, argv, bwrap mounts, environment, config."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from typing import Any

from gem_graph.settings import SandboxSettings

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")
RUNTIME = os.path.join(os.path.dirname(HERE), "runtime.py")
DBSTATE = os.path.join(os.path.dirname(HERE), "dbstate")
"""A package: the worker loads its `__init__.py` by path, bwrap mounts the directory."""
STRICTJSON = os.path.join(os.path.dirname(HERE), "strictjson.py")
MINIMAL_ENV = {"LC_ALL": "C.UTF-8", "PATH": "/nonexistent", "PYTHONHASHSEED": "0"}
"""The worker's whole environment: never the caller's os.environ (it holds API keys).

A fixed hash seed keeps the iteration order of sets of strings identical across workers,
machines and runs, so a replay next year returns what the trajectory recorded.
"""

INTERPRETER_FLAGS = ("-s", "-S", "-B", "-P")
"""What `-I` gives (no user site, no script directory on sys.path) minus `-E`: the
environment is ours alone (`MINIMAL_ENV`), and `-E` would ignore its PYTHONHASHSEED."""


def python_executable() -> str:
    """The real base interpreter (not the venv shim), run with -s -S -P so no site-packages load."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _multiarch() -> str:
    return str(sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu")


def read_dirs() -> list[str]:
    """Directories the worker may read after lockdown: stdlib, extension modules, shared libs."""
    paths = sysconfig.get_paths()
    arch = _multiarch()
    candidates = [
        paths["stdlib"],
        paths["platstdlib"],
        str(sysconfig.get_config_var("DESTSHARED") or ""),
        f"/lib/{arch}",
        f"/usr/lib/{arch}",
        "/lib64",
        "/usr/lib64",
        "/usr/share/zoneinfo",
    ]
    out: list[str] = []
    for path in candidates:
        if path and os.path.isdir(path):
            real = os.path.realpath(path)
            if real not in out:
                out.append(real)
    return out


def read_files() -> list[str]:
    """Single files the worker may read: the loader cache and libpython (for dlopen)."""
    files = ["/etc/ld.so.cache"]
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib:
        files.append(os.path.join(str(libdir), str(ldlib)))
    return [os.path.realpath(f) for f in files if os.path.exists(f)]


def bwrap_argv(bwrap: str, extra_ro: list[str] | None = None) -> list[str]:
    """bwrap prefix: new user, pid, net, ipc, uts namespaces; a read-only minimal filesystem."""
    argv = [
        bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc",
        "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--cap-drop", "ALL",
        "--dev", "/dev", "--chdir", "/",
    ]  # fmt: skip
    for top in ("/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    mounts = ["/usr", "/etc/ld.so.cache", sys.base_prefix, os.path.dirname(python_executable())]
    for path in [*mounts, *(extra_ro or [])]:
        real = os.path.realpath(path)
        if os.path.exists(real) and not real.startswith("/usr/"):
            argv += ["--ro-bind", real, real]
    argv += ["--"]
    return argv


def worker_config(
    settings: SandboxSettings, *, seccomp_dir: str | None, bwrap: bool, broken: tuple[str, ...]
) -> dict[str, Any]:
    """The JSON config the worker receives on its command line (no secrets in it)."""
    confined = settings.tier != "none"
    return {
        "tier": settings.tier,
        "landlock": confined,
        "seccomp": confined,
        "seccomp_dir": seccomp_dir,
        "bwrap": bwrap,
        "read_dirs": read_dirs(),
        "read_files": read_files(),
        "runtime_path": RUNTIME,
        "dbstate_path": os.path.join(DBSTATE, "__init__.py"),
        "strictjson_path": STRICTJSON,
        "call_timeout_s": settings.call_timeout_s,
        "build_timeout_s": settings.build_timeout_s,
        "limits": {
            "cpu": settings.cpu_seconds,
            "as_bytes": settings.memory_mb * 1024 * 1024,
            "nofile": settings.max_open_files,
        },
        "max_reply_bytes": settings.max_reply_bytes,
        "max_db_bytes": settings.max_db_bytes,
        "max_stdout_bytes": settings.max_stdout_bytes,
        "break": list(broken),
    }


def worker_argv(mode: str, config: dict[str, Any], bwrap: str | None) -> list[str]:
    """Full argv; under bwrap the worker's files and the seccomp binding are bind-mounted."""
    cmd = [python_executable(), *INTERPRETER_FLAGS, WORKER, mode, json.dumps(config)]
    if bwrap is None:
        return cmd
    extra = [HERE, RUNTIME, DBSTATE, STRICTJSON, *config["read_dirs"], *config["read_files"]]
    if config.get("seccomp_dir"):
        extra.append(os.path.join(config["seccomp_dir"], "pyseccomp.py"))
    return [*bwrap_argv(bwrap, extra), *cmd]
