"""The connection cache in Redis: the real `ConnectionCache` adapter.

Lists are packed 16-byte UUIDs: a fresh copy (`conn:{<userId>}`, short TTL,
dropped on invalidation) and a stale copy (`conn:{<userId>}:stale`, long TTL);
`conn:{<userId>}:gen` counts invalidations so that a read racing with one is not
cached. The braces are a hash tag: on a Redis Cluster the three keys of a user
share a slot, which the store-if-unchanged script needs. Every call translates
the client's failures at the boundary, naming Redis as the dependency.

On a cluster the lists are kept in slot order (`slot_ordered`, so that each
fan-out batch goes to one master) under keys of their own, `conn:{<userId>}:slots`
and `conn:{<userId>}:slots:stale`: a list read from them is known to be in that
order and distinct, while a list under the plain keys (one node, or written
before) is planned as any list is, sorted again. Invalidation drops both fresh
copies, whichever mode wrote them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from contracts.failures import REDIS, boundary
from contracts.keys import connections_cache_key
from pipelines.feed.ports import CachedConnections
from transforms.fanout import PackedIds

UUID_BYTES = 16


SLOTS_SUFFIX = ":slots"


def slots_cache_key(user_id: uuid.UUID) -> str:
    """The fresh copy of a user's connections in slot order, on a cluster."""
    return f"{connections_cache_key(user_id)}{SLOTS_SUFFIX}"


def stale_cache_key(user_id: uuid.UUID, *, by_slot: bool = False) -> str:
    fresh = slots_cache_key(user_id) if by_slot else connections_cache_key(user_id)
    return f"{fresh}:stale"


def generation_key(user_id: uuid.UUID) -> str:
    return f"{connections_cache_key(user_id)}:gen"


# Cache a list only if no invalidation happened since the read began (the
# generation is unchanged); otherwise the list may lack the newest connection.
STORE_IF_UNCHANGED = """
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return 1
"""


def pack_ids(ids: Sequence[uuid.UUID]) -> bytes:
    if isinstance(ids, PackedIds):
        return ids.packed
    return b"".join(i.bytes for i in ids)


def unpack_ids(raw: bytes | str, *, by_slot: bool = False) -> PackedIds:
    """The cached ids, still packed: fan-out reads their bytes, not UUID objects."""
    if isinstance(raw, str):  # only with decode_responses=True, which this cache never uses
        raise TypeError("The connections cache needs a Redis client returning bytes.")
    return PackedIds(raw, by_slot=by_slot)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class RedisConnectionCache:
    """`ConnectionCache` over a Redis client (one node or a cluster) returning bytes.

    `by_slot`: keep the lists in slot order under the `:slots` keys (a cluster);
    `store_if_unchanged` then takes only lists `slot_ordered` made.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        fresh_ttl: int,
        stale_ttl: int,
        by_slot: bool = False,
    ) -> None:
        self._redis = client
        self._fresh_ttl = fresh_ttl
        self._stale_ttl = stale_ttl
        self._by_slot = by_slot
        self._fresh_key = slots_cache_key if by_slot else connections_cache_key
        self._store_script = client.register_script(STORE_IF_UNCHANGED)

    async def read(self, user_id: uuid.UUID) -> CachedConnections:
        with boundary("Reading cached connections from Redis", dependency=REDIS):
            cached, generation = await self._redis.mget(
                self._fresh_key(user_id), generation_key(user_id)
            )
        ids = None if cached is None else unpack_ids(cached, by_slot=self._by_slot)
        # A missing generation counts as "": the script compares it with GET's `or ''`.
        return CachedConnections(ids, _as_bytes(generation or b""))

    async def store_if_unchanged(
        self, user_id: uuid.UUID, connections: Sequence[uuid.UUID], generation: bytes
    ) -> bool:
        if self._by_slot and not (isinstance(connections, PackedIds) and connections.by_slot):
            raise ValueError("This cache keeps lists in slot order: pass slot_ordered(ids).")
        keys = [
            self._fresh_key(user_id),
            stale_cache_key(user_id, by_slot=self._by_slot),
            generation_key(user_id),
        ]
        args: list[bytes | str | int] = [
            pack_ids(connections),
            self._fresh_ttl,
            self._stale_ttl,
            generation,
        ]
        with boundary("Caching connections in Redis", dependency=REDIS):
            stored = await self._store_script(keys=keys, args=args)
        return bool(stored)

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        with boundary("Invalidating cached connections in Redis", dependency=REDIS):
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in user_ids:
                    pipe.delete(connections_cache_key(user), slots_cache_key(user))
                    pipe.incr(generation_key(user))
                    pipe.expire(generation_key(user), self._fresh_ttl)
                await pipe.execute()

    async def read_stale(self, user_id: uuid.UUID) -> Sequence[uuid.UUID] | None:
        with boundary("Reading stale connections from Redis", dependency=REDIS):
            stale = await self._redis.get(stale_cache_key(user_id, by_slot=self._by_slot))
        return None if stale is None else unpack_ids(stale, by_slot=self._by_slot)
