"""A Redis Cluster for `python -m bench.fanout --cluster`: a local one, or one given by URL.

`LocalCluster` (in `loadtest.redis_cluster`, shared with `socialpipe loadtest
--redis-cluster`) starts `masters` cluster-enabled `redis-server` processes on
free loopback ports and joins them; no replicas by default: the benchmark
measures the masters' write path, and on a small machine replicas would only
take CPU from them.

`ClusterTarget` is what the benchmark does to a cluster: the `ClusterFeedStore`
under test, flushing every master, the masters' script time, and the
`redis-benchmark --cluster` reference.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from config.clients import cluster_startup_nodes, no_client_retries
from loadtest.redis_cluster import (
    LOOPBACK,
    START_SECONDS,
    ClusterError,
    LocalCluster,
)
from pipelines.feed.cluster_feeds import ClusterFeedStore, slot_ordered
from transforms.fanout import PackedIds

__all__ = [
    "LOOPBACK",
    "REFERENCE_PATTERN",
    "START_SECONDS",
    "ClusterError",
    "ClusterTarget",
    "LocalCluster",
    "cluster_benchmark_args",
]

REFERENCE_PATTERN = "mylist*"  # redis-benchmark --cluster writes mylist:{tag}, one per master


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

    def arrange(self, ids: PackedIds) -> PackedIds:
        """The ids as the connection cache holds them on a cluster: in slot order."""
        return slot_ordered(ids)

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
