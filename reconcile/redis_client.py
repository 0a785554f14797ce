"""The Redis clients reconciliation works with: one node, or a Redis Cluster.

Both hold the same keys. What differs is a multi-key read: one node answers one
`MGET`; a cluster refuses keys of different slots in one command, so there the
keys are read with one `MGET` per slot, sent as one pipeline per node.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

AnyRedis = redis.Redis | RedisCluster


async def get_many(client: AnyRedis, keys: Sequence[str]) -> list[bytes | str | None]:
    """The values of `keys` in their order (None for a missing key)."""
    if not keys:
        return []
    if isinstance(client, RedisCluster):
        return list(await client.mget_nonatomic(list(keys)))
    return list(await client.mget(list(keys)))
