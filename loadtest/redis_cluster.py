"""A local Redis Cluster on loopback: `masters` cluster-enabled redis-servers, joined.

`LocalCluster` starts `masters` cluster-enabled `redis-server` processes (the
newest installed: loadtest/redis_binaries.py) on free loopback ports, each in a
temporary directory, joins them with `redis-cli --cluster create`, and stops
them and removes the directories in `close()`. No replicas by default: the
fan-out benchmark and `socialpipe loadtest --redis-cluster` measure the masters'
write path, and on a small machine replicas would only take CPU from them.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from loadtest.redis_binaries import RedisBinaryError, find_redis_binary

LOOPBACK = "127.0.0.1"
START_SECONDS = 30.0
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
SPAWN_TRIES = 3
LOWEST_PORT = 15000


class ClusterError(Exception):
    """The local cluster could not be started."""


class LocalCluster:
    """`masters` (+ `replicas` per master) cluster-enabled redis-servers on loopback.

    A node whose server exits before it answers (another process took its port
    or its bus port between the probe and the bind) is started again on other
    ports, up to `SPAWN_TRIES` times.
    """

    def __init__(
        self, masters: int = 3, replicas: int = 0, node_timeout_ms: int | None = None
    ) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = free_cluster_ports(masters * (1 + replicas))
        self.folders = [Path(tempfile.mkdtemp(prefix="redis-cluster-")) for _ in self.ports]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        seeds = ",".join(f"{LOOPBACK}:{p}" for p in self.ports[: self.masters])
        return f"redis+cluster://{seeds}/0"

    def start(self) -> None:
        try:
            server, cli = find_redis_binary("redis-server"), find_redis_binary("redis-cli")
        except RedisBinaryError as exc:
            raise ClusterError(str(exc)) from exc
        self.processes = [self._spawn(server, i) for i in range(len(self.ports))]
        deadline = time.monotonic() + START_SECONDS
        for index in range(len(self.ports)):
            self._wait_answering(server, index, deadline)
        nodes = [f"{LOOPBACK}:{p}" for p in self.ports]
        replicas = ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(
            [cli, "--cluster", "create", *nodes, *replicas],
            capture_output=True,
            timeout=START_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed: {done.stdout[-2000:]!r}")
        for port in self.ports:
            _wait(partial(cluster_ok, port), deadline, f"cluster state ok on {port}")

    def server_arguments(self, index: int) -> list[str]:
        """Extra redis-server arguments for node `index` (subclasses add theirs)."""
        if self.node_timeout_ms is None:
            return []
        return ["--cluster-node-timeout", str(self.node_timeout_ms)]

    def _spawn(self, server: str, index: int) -> subprocess.Popen[bytes]:
        port, folder = self.ports[index], self.folders[index]
        command = [
            server, "--bind", LOOPBACK, "--port", str(port), "--dir", str(folder),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(folder / "redis.log"), *self.server_arguments(index),
        ]  # fmt: skip
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_answering(self, server: str, index: int, deadline: float) -> None:
        for _ in range(SPAWN_TRIES):
            process, port = self.processes[index], self.ports[index]
            while process.poll() is None and not _serves(port, process.pid):
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"node {port} answering: still not so after {START_SECONDS:.0f} s; "
                        f"log tail:\n{self._log_tail(index)}"
                    )
                time.sleep(0.02)
            if process.poll() is None:
                return
            # The server exited: its port or bus port was taken after the probe.
            taken = set(self.ports)
            fresh = free_cluster_ports(len(taken) + 1)
            self.ports[index] = next(p for p in fresh if p not in taken)
            (self.folders[index] / "nodes.conf").unlink(missing_ok=True)
            self.processes[index] = self._spawn(server, index)
        raise ClusterError(
            f"node {self.ports[index]} exited {SPAWN_TRIES} times on start; "
            f"log tail:\n{self._log_tail(index)}"
        )

    def _log_tail(self, index: int) -> str:
        try:
            return (self.folders[index] / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def bindable(port: int) -> bool:
    """Whether a server could listen on `port` of the loopback address now."""
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_cluster_ports(count: int) -> list[int]:
    """`count` distinct free ports whose bus ports (+10000) are free too.

    Both lie below the kernel's ephemeral range, so no outgoing connection takes
    one of them between this probe and the server's bind, or while a stopped
    node is down.
    """
    highest = max(ephemeral_low() - BUS_OFFSET, LOWEST_PORT + count)
    ports: list[int] = []
    for _ in range(1000):
        port = random.randrange(LOWEST_PORT, highest)
        if port not in ports and bindable(port) and bindable(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ClusterError(f"not enough free loopback ports between {LOWEST_PORT} and {highest}")


def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while not ready():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: still not so after {START_SECONDS:.0f} s")
        time.sleep(0.02)


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2.0, socket_connect_timeout=0.5)


def _probe(port: int) -> redis.Redis:
    """A client for one quick question, no retries: whatever else listens on `port`
    does not hold the caller up."""
    return redis.Redis(
        host=LOOPBACK, port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


def pings(port: int) -> bool:
    try:
        with _probe(port) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _serves(port: int, pid: int) -> bool:
    """Whether the Redis on `port` is process `pid` (not some other test's server)."""
    try:
        with _probe(port) as client:
            return int(client.info("server")["process_id"]) == pid
    except redis.RedisError:
        return False


def cluster_ok(port: int) -> bool:
    with node_client(port) as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text
