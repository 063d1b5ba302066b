"""A real two-node Ray cluster on this machine, for the Ray engine's tests.

The head (`ray start --head --num-cpus 1`) and a second node (`ray start --address …
--num-cpus 1`) each run with `--block` in a session of their own, on their own ports, bound
to 127.0.0.1, so a test can kill one node's whole process group (raylet, workers, agents)
and the teardown ends exactly the processes it started (`ray stop` would end every Ray on
the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90.0
CLUSTER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # loopback only; no token to hand around
    # Notice a dead node within ~2 s instead of ~30 s.
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


# Set for the whole test session at collection, before any test starts a Ray in this
# process: Ray reads its settings (token authentication among them) once per process, and a
# driver whose setting differs from the cluster's loses its actors at once.
for _key, _value in CLUSTER_ENV.items():
    os.environ.setdefault(_key, _value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_ports() -> list[str]:
    """The per-node ports, each free now, so two nodes on one machine never collide."""
    names = (
        "--node-manager-port",
        "--object-manager-port",
        "--metrics-export-port",
        "--dashboard-agent-grpc-port",
        "--dashboard-agent-listen-port",
        "--runtime-env-agent-port",
    )
    args: list[str] = []
    for name in names:
        args += [name, str(free_port())]
    return args


def cluster_env() -> dict[str, str]:
    return {**os.environ, **CLUSTER_ENV}


class StartFailed(Exception):
    """`ray start` exited before the node was up."""


@dataclass
class RayCluster:
    """The two nodes: `address` for `--ray-address`; `kill_second()` kills the second node."""

    address: str
    temp_dir: Path
    head: subprocess.Popen[bytes]
    second: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def _start(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start one node (`ray start --block`), once more with new ports if it fails."""
        try:
            return self._start_once(args, log)
        except StartFailed:
            return self._start_once(args, log.with_suffix(".again.log"), last=True)

    def _start_once(
        self, args: list[str], log: Path, *, last: bool = False
    ) -> subprocess.Popen[bytes]:
        self.logs.append(log)
        handle = log.open("wb")
        process = subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
             "--disable-usage-stats", *node_ports(), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=cluster_env(),
            start_new_session=True,
        )  # fmt: skip
        handle.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"Ray runtime started" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                kill_group(process)
                if not last:
                    raise StartFailed
                pytest.fail(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return process

    def start_second(self) -> None:
        """(Re)start the second node and wait until the cluster has two live nodes."""
        self.second = self._start(
            ["--address", self.address], self.temp_dir / f"second-{len(self.logs)}.log"
        )
        wait_for_nodes(self.address, 2)

    def kill_second(self) -> None:
        """SIGKILL every process of the second node at once, as when a machine dies."""
        assert self.second is not None
        kill_group(self.second)
        self.second = None

    def stop(self) -> None:
        for process in (self.second, self.head):
            if process is not None:
                kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def alive_nodes(address: str) -> int:
    """Live nodes of the cluster, asked from a short-lived driver (never this process, so
    no test inherits a connection)."""
    code = (
        f"import ray, logging; ray.init(address={address!r}, logging_level=logging.ERROR);"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cluster_env(), timeout=60
    )
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0


def wait_for_nodes(address: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while alive_nodes(address) != count:
        if time.monotonic() > deadline:
            pytest.fail(f"the Ray cluster at {address} did not reach {count} live nodes")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """The two-node cluster, shared by the session's Ray tests; torn down at the end."""
    # Short: Ray's socket paths live under it and must stay below ~107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="ggray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    cluster = RayCluster(address=address, temp_dir=temp_dir, head=None)  # type: ignore[arg-type]
    try:
        cluster.head = cluster._start(
            ["--head", "--port", str(port), "--temp-dir", str(temp_dir / "ray"),
             "--include-dashboard=false"],
            temp_dir / "head.log",
        )  # fmt: skip
        cluster.start_second()
        yield cluster
    finally:
        cluster.stop()
        if request.session.testsfailed:
            print(f"\nthe Ray cluster's logs are kept in {temp_dir}")
        else:
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_nodes(ray_cluster: RayCluster) -> RayCluster:
    """The cluster with its second node up (restarted if an earlier test killed it)."""
    if ray_cluster.second is None or ray_cluster.second.poll() is not None:
        ray_cluster.start_second()
    return ray_cluster
