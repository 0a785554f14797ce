"""Six cluster-enabled redis-servers on loopback for the cluster tests (3 masters, 3 replicas).

The load tester's `LocalCluster` (loadtest/redis_cluster.py: free ports below
the ephemeral range, a node restarted on other ports if its server exits on
start) with a 2 s `cluster-node-timeout`, a pid file per node and a watchdog per
server that stops it if pytest itself dies (tests/outage/servers.py).
"""

from __future__ import annotations

import atexit
import signal

from loadtest.redis_cluster import LocalCluster as _LocalCluster
from loadtest.redis_cluster import node_client
from tests.outage.servers import Watchdog

NODE_TIMEOUT_MS = 2000


class LocalCluster(_LocalCluster):
    """3 masters and 3 replicas, created once and closed once."""

    def __init__(self) -> None:
        super().__init__(masters=3, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)
        self.watchdogs = [
            Watchdog(folder / "redis.pid", signal.SIGTERM, folder) for folder in self.folders
        ]
        atexit.register(self.close)

    def server_arguments(self, index: int) -> list[str]:
        pid_file = self.folders[index] / "redis.pid"
        return [*super().server_arguments(index), "--pidfile", str(pid_file)]

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for port in self.ports:
            with node_client(port) as client:
                if client.info("replication")["role"] == "master":
                    client.flushall()

    def close(self) -> None:
        atexit.unregister(self.close)
        super().close()
        for watchdog in self.watchdogs:
            watchdog.dismiss()
