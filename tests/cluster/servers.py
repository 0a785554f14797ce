"""Six cluster-enabled redis-servers on loopback for the cluster tests (3 masters, 3 replicas).

Each runs in a temporary directory of its own, joined by `redis-cli --cluster
create`; a watchdog per server stops it if pytest itself dies
(tests/outage/servers.py). The node probes are the load tester's
(`loadtest/redis_cluster.py`).
"""

from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from loadtest.redis_cluster import cluster_ok, node_client, pings
from tests.outage.servers import (
    LOOPBACK,
    ServerError,
    Watchdog,
    _bindable,
    find_redis_server,
    pick_port,
    wait_until,
)

NODES = 6
NODE_TIMEOUT_MS = 2000
START_SECONDS = 30.0


class LocalCluster:
    """Six cluster-enabled redis-servers, created once and closed once."""

    def __init__(self) -> None:
        self.binary = find_redis_server()
        self.ports = _distinct_ports(NODES)
        self.folders = [Path(tempfile.mkdtemp(prefix="cluster-redis-")) for _ in self.ports]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.watchdogs = [
            Watchdog(folder / "redis.pid", signal.SIGTERM, folder) for folder in self.folders
        ]
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{p}" for p in self.ports[:3]) + "/0"

    def start(self) -> None:
        for port, folder in zip(self.ports, self.folders, strict=True):
            self.processes.append(self._spawn(port, folder))
        deadline = time.monotonic() + START_SECONDS
        for port in self.ports:
            wait_until(partial(pings, port), deadline, f"cluster node {port} answering")
        self._create()
        for port in self.ports:
            wait_until(partial(cluster_ok, port), deadline, f"cluster state ok on {port}")

    def _spawn(self, port: int, folder: Path) -> subprocess.Popen[bytes]:
        command = [
            str(self.binary), "--bind", LOOPBACK, "--port", str(port), "--dir", str(folder),
            "--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--pidfile", str(folder / "redis.pid"),
            "--logfile", str(folder / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _create(self) -> None:
        cli = shutil.which("redis-cli") or str(self.binary.with_name("redis-cli"))
        nodes = [f"{LOOPBACK}:{p}" for p in self.ports]
        done = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True,
            timeout=START_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed:\n{done.stdout[-2000:]!r}")

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for port in self.ports:
            with node_client(port) as client:
                if client.info("replication")["role"] == "master":
                    client.flushall()

    def close(self) -> None:
        atexit.unregister(self.close)
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for watchdog in self.watchdogs:
            watchdog.dismiss()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def _distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        # The cluster bus listens on port + 10000: that one must be free too.
        port = pick_port()
        if port not in ports and port + 10000 < 65536 and _bindable(port + 10000):
            ports.append(port)
    return ports
