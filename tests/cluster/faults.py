"""Faults on a private local Redis Cluster: a master killed, slots resharded, feeds counted.

The fault tests destroy what they run on, so they never use the session's
cluster: each starts a `LocalCluster` of its own (tests/cluster/conftest.py),
3 masters and 3 replicas with a 2 s `cluster-node-timeout`, and closes it.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from config.clients import cluster_startup_nodes
from contracts.keys import feed_key
from loadtest.redis_binaries import find_redis_binary
from tests.cluster.servers import LocalCluster
from tests.outage.servers import LOOPBACK

FAILOVER_SECONDS = 20.0
RESHARD_SECONDS = 30.0
SYNC_SECONDS = 20.0
AGREE_SECONDS = 10.0


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=2.0, socket_connect_timeout=0.5)


@dataclass(frozen=True, slots=True)
class Node:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    master: bool
    master_id: str
    failed: bool
    slots: int


def cluster_nodes(port: int) -> list[Node]:
    """The cluster as the node on `port` sees it."""
    with node_client(port) as client:
        raw = client.execute_command("CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        address, flags = fields[1], fields[2].split(",")
        slots = 0
        for part in fields[8:]:
            if part.startswith("["):
                continue  # a slot being migrated or imported
            low, _, high = part.partition("-")
            slots += int(high or low) - int(low) + 1
        nodes.append(
            Node(
                node_id=fields[0],
                port=int(address.split("@")[0].rsplit(":", 1)[1]),
                master="master" in flags,
                master_id=fields[3],
                failed="fail" in flags,
                slots=slots,
            )
        )
    return nodes


def masters(port: int) -> list[Node]:
    return [n for n in cluster_nodes(port) if n.master and not n.failed and n.slots]


def serves(seed: int, node: Node, slot: int) -> bool:
    """Whether `node` serves `slot`, as the node on `seed` sees it."""
    with node_client(seed) as client:
        shards = client.execute_command("CLUSTER", "SLOTS")
    for low, high, primary, *_ in shards:
        if low <= slot <= high:
            return int(primary[1]) == node.port
    return False


def cluster_ok(port: int) -> bool:
    try:
        with node_client(port) as client:
            raw = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return "cluster_state:ok" in text


def start_replicated(cluster: LocalCluster) -> None:
    """Start `cluster` and wait until every replica holds its master's data.

    A replica that never completed its first sync does not fail over, and a master
    waits `repl-diskless-sync-delay` (5 s by default) before it sends one.
    """
    cluster.start()
    for port in cluster.ports:
        with node_client(port) as client:
            client.config_set("repl-diskless-sync-delay", 0)
    deadline = time.monotonic() + SYNC_SECONDS
    while not all(_synced(port) for port in cluster.ports):
        if time.monotonic() > deadline:
            raise AssertionError(f"the replicas did not sync within {SYNC_SECONDS} s")
        time.sleep(0.1)


def _synced(port: int) -> bool:
    with node_client(port) as client:
        info = client.info("replication")
    if info["role"] == "master":
        return int(info["connected_slaves"]) == 1
    return info["master_link_status"] == "up" and not int(info["master_sync_in_progress"])


@contextmanager
def frozen(cluster: LocalCluster, port: int) -> Iterator[None]:
    """SIGSTOP the server on `port` for the block: it reads nothing, answers nothing."""
    process = cluster.processes[cluster.ports.index(port)]
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


def kill(cluster: LocalCluster, port: int) -> None:
    """SIGKILL the server on `port`: no shutdown, no last replication."""
    cluster.processes[cluster.ports.index(port)].kill()


async def wait_for_promotion(cluster: LocalCluster, dead: Node) -> float:
    """Wait until the dead master's replica serves its slots; the seconds it took."""
    started = time.monotonic()
    alive = [p for p in cluster.ports if p != dead.port]
    deadline = started + FAILOVER_SECONDS
    while time.monotonic() < deadline:
        views = await asyncio.to_thread(_promoted_everywhere, alive, dead)
        if views:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no replica of {dead.port} promoted within {FAILOVER_SECONDS} s")


def _promoted_everywhere(ports: Sequence[int], dead: Node) -> bool:
    for port in ports:
        if not cluster_ok(port):
            return False
        holders = [n for n in masters(port) if n.node_id != dead.node_id]
        if sum(n.slots for n in holders) != 16384:
            return False
    return True


def redis_cli() -> str:
    return find_redis_binary("redis-cli")


async def reshard(ports: Sequence[int], source: str, target: str, slots: int) -> float:
    """`redis-cli --cluster reshard` of `slots` slots from `source` to `target`; its seconds.

    It refuses to start until every node sees the same slot map, so that is waited for.
    """
    port = ports[0]
    started = time.monotonic()
    while not await asyncio.to_thread(_agree, ports):
        if time.monotonic() - started > AGREE_SECONDS:
            raise AssertionError(f"the nodes did not agree on the slots within {AGREE_SECONDS} s")
        await asyncio.sleep(0.05)
    process = await asyncio.create_subprocess_exec(
        redis_cli(), "--cluster", "reshard", f"{LOOPBACK}:{port}",
        "--cluster-from", source, "--cluster-to", target,
        "--cluster-slots", str(slots), "--cluster-yes",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RESHARD_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"reshard failed:\n{output[-2000:].decode(errors='replace')}")
    return time.monotonic() - started


def _agree(ports: Sequence[int]) -> bool:
    views = {tuple(sorted((n.node_id, n.slots) for n in cluster_nodes(p))) for p in ports}
    return len(views) == 1


def cluster_client(url: str) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in cluster_startup_nodes(url)]
    return RedisCluster(startup_nodes=nodes)


@dataclass(frozen=True, slots=True)
class Tally:
    """How many feeds hold a post once, not at all, or more than once."""

    once: int
    missing: list[uuid.UUID]
    duplicated: list[uuid.UUID]


async def tally(client: RedisCluster, users: Sequence[uuid.UUID], post: uuid.UUID) -> Tally:
    wanted = str(post).encode()
    once, missing, duplicated = 0, [], []
    for start in range(0, len(users), 2000):
        chunk = users[start : start + 2000]
        async with client.pipeline(transaction=False) as pipe:
            for user in chunk:
                pipe.lrange(feed_key(user), 0, -1)
            feeds = await pipe.execute()
        for user, feed in zip(chunk, feeds, strict=True):
            count = feed.count(wanted)
            if count == 1:
                once += 1
            elif count == 0:
                missing.append(user)
            else:
                duplicated.append(user)
    return Tally(once, missing, duplicated)
