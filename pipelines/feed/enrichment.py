"""Enrichment: the author's accepted connections (DESIGN §5).

Read through a Redis cache of packed 16-byte UUIDs: a fresh copy
(`conn:{userId}`, short TTL, dropped on ConnectionAccepted) and a stale copy
(`conn:{userId}:stale`, long TTL) kept only as the fallback while the source is
failing. Source reads go through a circuit breaker. The stale copy is not
dropped on invalidation on purpose: during an outage, a list missing the newest
connection is better than no fan-out at all.
"""

from __future__ import annotations

import uuid

import redis.asyncio as redis
import structlog

from contracts.errors import DependencyUnavailable, TransientError
from contracts.keys import connections_cache_key
from pipelines.feed.breaker import CircuitBreaker, CircuitOpenError
from pipelines.feed.ports import ConnectionSource

log = structlog.get_logger(__name__)

UUID_BYTES = 16


def stale_cache_key(user_id: uuid.UUID) -> str:
    return f"{connections_cache_key(user_id)}:stale"


def pack_ids(ids: list[uuid.UUID]) -> bytes:
    return b"".join(i.bytes for i in ids)


def unpack_ids(raw: bytes | str) -> list[uuid.UUID]:
    if isinstance(raw, str):  # only with decode_responses=True, which this cache never uses
        raise TypeError("The connections cache needs a Redis client returning bytes.")
    return [uuid.UUID(bytes=raw[i : i + UUID_BYTES]) for i in range(0, len(raw), UUID_BYTES)]


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

    async def connections(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """The accepted connections of `user_id`, either direction.

        Raises `DependencyUnavailable` when the breaker is open and no stale copy
        exists, `TransientError` when the source failed and no stale copy exists.
        """
        cached = await self._redis.get(connections_cache_key(user_id))
        if cached is not None:
            return unpack_ids(cached)
        try:
            ids = await self._breaker.call(lambda: self._source.accepted_connections(user_id))
        except Exception as exc:
            return await self._fallback(user_id, exc)
        self._starved = False
        await self._store(user_id, ids)
        return ids

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        """Drop the fresh cached lists, so the next read goes to the source."""
        await self._redis.delete(*(connections_cache_key(u) for u in user_ids))

    async def wait_ready(self) -> None:
        """Block while the breaker is open and the last read found no fallback."""
        if self._starved:
            await self._breaker.wait_until_callable()
            self._starved = False

    async def _store(self, user_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
        packed = pack_ids(ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(connections_cache_key(user_id), packed, ex=self._fresh_ttl)
            pipe.set(stale_cache_key(user_id), packed, ex=self._stale_ttl)
            await pipe.execute()

    async def _fallback(
        self,
        user_id: uuid.UUID,
        exc: Exception,
    ) -> list[uuid.UUID]:
        stale = await self._redis.get(stale_cache_key(user_id))
        if stale is not None:
            log.warning(
                "using stale connections", userId=str(user_id), reason=str(exc) or repr(exc)
            )
            return unpack_ids(stale)
        # Polling pauses (wait_ready) only while the breaker refuses calls.
        self._starved = not self._breaker.allows_call()
        error = DependencyUnavailable if isinstance(exc, CircuitOpenError) else TransientError
        raise error(
            f"The connections of user {user_id} are unavailable"
            f" ({str(exc) or type(exc).__name__}) and none are cached."
        ) from exc
