"""Enrichment: the author's accepted connections (DESIGN §5).

Read through a Redis cache of packed 16-byte UUIDs: a fresh copy
(`conn:{userId}`, short TTL, dropped on ConnectionAccepted) and a stale copy
(`conn:{userId}:stale`, long TTL) kept only as the fallback while the source is
failing; `conn:{userId}:gen` counts invalidations so that a read racing with one
is not cached. Source reads go through a circuit breaker. The stale copy is not
dropped on invalidation on purpose: during an outage, a list missing the newest
connection is better than no fan-out at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis.asyncio as redis
import structlog

from contracts.errors import DependencyDown, DependencyUnavailable
from contracts.failures import POSTGRES, REDIS, boundary, translate
from contracts.keys import connections_cache_key
from pipelines.feed.breaker import CircuitBreaker, CircuitOpenError
from pipelines.feed.ports import ConnectionSource
from transforms.fanout import PackedIds

log = structlog.get_logger(__name__)

UUID_BYTES = 16


def stale_cache_key(user_id: uuid.UUID) -> str:
    return f"{connections_cache_key(user_id)}:stale"


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


def unpack_ids(raw: bytes | str) -> PackedIds:
    """The cached ids, still packed: fan-out reads their bytes, not UUID objects."""
    if isinstance(raw, str):  # only with decode_responses=True, which this cache never uses
        raise TypeError("The connections cache needs a Redis client returning bytes.")
    return PackedIds(raw)


class ConnectionLookup:
    """Cached, breaker-guarded reads of a user's accepted connections."""

    def __init__(
        self,
        source: ConnectionSource,
        client: redis.Redis,
        breaker: CircuitBreaker,
        *,
        fresh_ttl: int,
        stale_ttl: int,
    ) -> None:
        self._source = source
        self._redis = client
        self._breaker = breaker
        self._fresh_ttl = fresh_ttl
        self._stale_ttl = stale_ttl
        self._starved = False
        self._store_script = client.register_script(STORE_IF_UNCHANGED)

    async def connections(self, user_id: uuid.UUID) -> Sequence[uuid.UUID]:
        """The accepted connections of `user_id`, either direction.

        Raises `DependencyUnavailable` when the breaker is open and no stale copy
        exists, otherwise the source's own failure (see `contracts.failures`).
        """
        with boundary("Reading cached connections from Redis", dependency=REDIS):
            cached, generation = await self._redis.mget(
                connections_cache_key(user_id), generation_key(user_id)
            )
        if cached is not None:
            return unpack_ids(cached)
        try:
            ids = await self._breaker.call(lambda: self._source.accepted_connections(user_id))
        except Exception as exc:
            return await self._fallback(user_id, exc)
        self._starved = False
        with boundary("Caching connections in Redis", dependency=REDIS):
            await self._store(user_id, ids, generation or b"")
        return ids

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        """Drop the fresh cached lists, so the next read goes to the source.

        Also bumps each user's generation, so a read that started before this
        invalidation (and may miss the new connection) does not re-cache its list.
        """
        with boundary("Invalidating cached connections in Redis", dependency=REDIS):
            async with self._redis.pipeline(transaction=False) as pipe:
                for user in user_ids:
                    pipe.delete(connections_cache_key(user))
                    pipe.incr(generation_key(user))
                    pipe.expire(generation_key(user), self._fresh_ttl)
                await pipe.execute()

    async def wait_ready(self) -> None:
        """Block while the breaker is open and the last read found no fallback."""
        if self._starved:
            await self._breaker.wait_until_callable()
            self._starved = False

    async def _store(
        self, user_id: uuid.UUID, ids: Sequence[uuid.UUID], generation: bytes | str
    ) -> None:
        keys = [connections_cache_key(user_id), stale_cache_key(user_id), generation_key(user_id)]
        ttls = [self._fresh_ttl, self._stale_ttl]
        args: list[bytes | str | int] = [pack_ids(ids), *ttls, generation]
        stored = await self._store_script(keys=keys, args=args)
        if not stored:
            log.debug("connections changed while read; not cached", userId=str(user_id))

    async def _fallback(
        self,
        user_id: uuid.UUID,
        exc: Exception,
    ) -> Sequence[uuid.UUID]:
        with boundary("Reading stale connections from Redis", dependency=REDIS):
            stale = await self._redis.get(stale_cache_key(user_id))
        if stale is not None:
            log.warning(
                "using stale connections", userId=str(user_id), reason=str(exc) or repr(exc)
            )
            return unpack_ids(stale)
        # Polling pauses (wait_ready) only while the breaker refuses calls.
        self._starved = not self._breaker.allows_call()
        if isinstance(exc, CircuitOpenError):
            raise DependencyUnavailable(
                POSTGRES,
                f"Reading the connections of user {user_id} failed: the breaker"
                f" {exc.name!r} is open and none are cached.",
            ) from exc
        operation = f"Reading the connections of user {user_id}"
        error = translate(exc, operation=operation, dependency=POSTGRES)
        if isinstance(error, DependencyDown):
            raise error from exc
        raise type(error)(
            f"{error.message} (none are cached)", error_type=error.error_type
        ) from exc
