"""Enrichment: the author's accepted connections (docs/life-of-a-post-created.md).

Read through a `ConnectionCache` (in production `RedisConnectionCache`,
`pipelines/feed/redis_cache.py`): a fresh copy, dropped on ConnectionAccepted,
and a stale copy kept only as the fallback while the source is failing; a
generation counts invalidations so that a read racing with one is not cached.
Source reads (PostgreSQL, or the Connections Service: `dependency` names it)
go through a circuit breaker. The stale copy is not dropped on
invalidation on purpose: during an outage, a list missing the newest
connection is better than no fan-out at all.

On a Redis Cluster every list read from the source is put in slot order
(`arrange`: `pipelines.feed.cluster_feeds.slot_ordered`) before it is cached
and planned, so that each fan-out batch goes to one master; the cache then
serves it in that order to every later post.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import structlog

from contracts.errors import DependencyDown, DependencyUnavailable
from contracts.failures import POSTGRES, translate
from contracts.outcomes import Probe
from pipelines.feed.breaker import CircuitBreaker, CircuitOpenError
from pipelines.feed.ports import ConnectionCache, ConnectionReader, ConnectionSource

# Re-exported: tools that clear the cache (loadtest/harness.py) name the key from here.
from pipelines.feed.redis_cache import stale_cache_key as stale_cache_key

log = structlog.get_logger(__name__)


@runtime_checkable
class PostConnectionSource(ConnectionSource, Protocol):
    """A `ConnectionSource` that also tells, in the same read, whether a post is its
    author's (`store/connections.py: PgConnectionSource`)."""

    async def post_connections(
        self, post_id: uuid.UUID, author_id: uuid.UUID
    ) -> Sequence[uuid.UUID] | None:
        """The accepted connections of `author_id`, or None when `post_id` is not theirs."""
        ...


class ConnectionLookup:
    """Cached, breaker-guarded reads of a user's accepted connections."""

    def __init__(
        self,
        source: ConnectionReader,
        cache: ConnectionCache,
        breaker: CircuitBreaker,
        *,
        dependency: str = POSTGRES,
        arrange: Callable[[Sequence[uuid.UUID]], Sequence[uuid.UUID]] | None = None,
    ) -> None:
        self._source = source
        self._dependency = dependency
        self._arrange = arrange
        self._cache = cache
        self._breaker = breaker
        self._starved = False
        self._without_fallback = False

    async def connections(self, user_id: uuid.UUID) -> Sequence[uuid.UUID]:
        """The accepted connections of `user_id`, either direction.

        Raises `DependencyUnavailable` when the breaker is open and no stale copy
        exists, otherwise the source's own failure (see `contracts.failures`).
        """
        cached = await self._cache.read(user_id)
        if cached.connections is not None:
            return cached.connections
        try:
            ids = await self._breaker.call(lambda: self._source.accepted_connections(user_id))
        except Exception as exc:
            return await self._fallback(user_id, exc)
        return await self._read_fresh(user_id, ids, cached.generation)

    def reads(self, source: ConnectionSource) -> bool:
        """Whether `source` is the one this lookup reads (so `connections_of_post` may
        ask it for a post and the connections at once)."""
        return source is self._source

    async def connections_of_post(
        self, post_id: uuid.UUID, author_id: uuid.UUID, posts: PostConnectionSource
    ) -> Sequence[uuid.UUID] | None:
        """The connections of `author_id` if `post_id` is their post, else None.

        The same answers as `posts.post_exists` then `connections`, with one source
        read for both when the list is not cached. When that read fails, the post is
        checked on its own (a failure there is the post check's, as before) and the
        stale copy serves as in `connections`.
        """
        cached = await self._cache.read(author_id)
        if cached.connections is not None:
            found = await posts.post_exists(post_id, author_id)
            return cached.connections if found else None
        try:
            ids = await self._breaker.call(lambda: posts.post_connections(post_id, author_id))
        except Exception as exc:
            if not await posts.post_exists(post_id, author_id):
                return None
            return await self._fallback(author_id, exc)
        if ids is None:
            return None
        return await self._read_fresh(author_id, ids, cached.generation)

    async def _read_fresh(
        self, user_id: uuid.UUID, ids: Sequence[uuid.UUID], generation: bytes
    ) -> Sequence[uuid.UUID]:
        """A source read succeeded: the source serves again, and its list is arranged,
        cached and returned."""
        self._starved = self._without_fallback = False
        if self._arrange is not None:
            ids = self._arrange(ids)
        if not await self._cache.store_if_unchanged(user_id, ids, generation):
            log.debug("connections changed while read; not cached", userId=str(user_id))
        return ids

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        """Drop the fresh cached lists, so the next read goes to the source.

        Also bumps each user's generation, so a read that started before this
        invalidation (and may miss the new connection) does not re-cache its list.
        """
        await self._cache.invalidate(*user_ids)

    async def wait_ready(self) -> None:
        """Block while the breaker is open and the last read found no fallback."""
        if self._starved:
            await self._breaker.wait_until_callable()
            self._starved = False

    def source_probe(self, probe: Probe) -> Probe:
        """The worker's probe of a source it could do without for a while: `probe` counts
        only after a read found no cached list to fall back on. While stale copies serve,
        a source that is down is no reason to pause the worker: the breaker and the
        fallback carry the fan-out."""

        async def check() -> None:
            if self._without_fallback:
                await probe()

        return check

    async def _fallback(
        self,
        user_id: uuid.UUID,
        exc: Exception,
    ) -> Sequence[uuid.UUID]:
        stale = await self._cache.read_stale(user_id)
        if stale is not None:
            log.warning(
                "using stale connections", userId=str(user_id), reason=str(exc) or repr(exc)
            )
            return stale
        self._without_fallback = True
        # Polling pauses (wait_ready) only while the breaker refuses calls.
        self._starved = not self._breaker.allows_call()
        if isinstance(exc, CircuitOpenError):
            raise DependencyUnavailable(
                self._dependency,
                f"Reading the connections of user {user_id} failed: the breaker"
                f" {exc.name!r} is open and none are cached.",
            ) from exc
        operation = f"Reading the connections of user {user_id}"
        error = translate(exc, operation=operation, dependency=self._dependency)
        if isinstance(error, DependencyDown):
            raise error from exc
        raise type(error)(
            f"{error.message} (none are cached)", error_type=error.error_type
        ) from exc
