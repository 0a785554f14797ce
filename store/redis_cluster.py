"""A Redis Cluster client whose callers wait for a free connection.

A single node's `BlockingConnectionPool` makes a burst of callers queue for its
connections; redis-py's asyncio cluster client has no such pool: a node whose
`max_connections` are all in use fails the next command at once with
`MaxConnectionsError`. Forty posts fanned out at the same moment by one worker
would then fail where one node serves them all.

`WaitingRedisCluster` gives the cluster the single node's behaviour: every
command and every pipeline first takes one of `max_connections` permits, shared
by the whole client, and waits up to `wait_seconds` for it. A permit stands for
at most one connection on each node, so no node's pool is ever exhausted. Code
that sends on a node's connection itself (the feed store's per-node pipelines)
takes a permit through `connection_permit` the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError


class WaitingRedisCluster(RedisCluster):
    """`RedisCluster` with a client-wide bound on connections in use that waits."""

    def __init__(
        self, *, max_connections: int = 32, wait_seconds: float = 10.0, **kwargs: Any
    ) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.permits = asyncio.Semaphore(max_connections)
        self.wait_seconds = wait_seconds

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with connection_permit(self):
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by the parent
        # redis-py's stubs call the pipeline abstract; its own `pipeline()` makes one.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        async with connection_permit(self.cluster_client):
            return await super().execute(raise_on_error, allow_redirections)


@asynccontextmanager
async def connection_permit(client: RedisCluster) -> AsyncIterator[None]:
    """Hold one of `client`'s connection permits (waiting for it, bounded).

    A plain `RedisCluster` (a benchmark's) has no permits: its callers bound
    themselves, and nothing is held.
    """
    if not isinstance(client, WaitingRedisCluster):
        yield
        return
    permits, wait = client.permits, client.wait_seconds
    try:
        async with asyncio.timeout(wait):
            await permits.acquire()
    except TimeoutError:
        raise RedisConnectionError(
            f"No Redis Cluster connection became free within {wait:g} s."
        ) from None
    try:
        yield
    finally:
        permits.release()
