"""Ports the feed pipeline needs. Real adapters live beside the code that owns
them (`store/connections.py`, `pipelines/feed/redis_feeds.py`,
`pipelines/feed/redis_cache.py`, `pipelines/feed/grpc_connections.py`); unit-test
fakes live in `tests/fakes.py`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ConnectionReader(Protocol):
    """Where enrichment reads an author's connections: PostgreSQL, or the Connections
    Service (`pipelines/feed/grpc_connections.py`) with `CONNECTIONS_SOURCE=grpc`."""

    async def accepted_connections(self, user_id: uuid.UUID) -> Sequence[uuid.UUID]:
        """Every user joined to `user_id` by an accepted connection, either direction."""
        ...


class ConnectionSource(ConnectionReader, Protocol):
    """The source of truth for who is connected to whom."""

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        """Whether `post_id` is a post of `author_id`: an event is a trigger, not the truth."""
        ...


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one distribution round trip did.

    `failed` are the recipients whose feed could not be written (e.g. the key
    holds another type); every other recipient was served. `already_done` means
    the batch digest was marked done before, so nothing was touched.
    """

    written: int
    skipped: int
    failed: tuple[uuid.UUID, ...] = ()
    already_done: bool = False


class FeedStore(Protocol):
    """The Redis feed lists (`feed:{userId}`)."""

    async def push_batch(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        *,
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        """Atomically push `post_id` to each recipient's feed, skip feeds that hold it,
        trim, and remember the batch `digest` as done for this post once no feed failed.

        `owner` identifies one handling attempt; a second attempt on the same post,
        or `careful=True`, makes the push check each feed for the post first."""
        ...

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        """The newest `count` post ids of a feed."""
        ...

    async def careful_until(self) -> float:
        """UNIX seconds until which every push must check feeds first (0: no such mark)."""
        ...


@dataclass(frozen=True, slots=True)
class CachedConnections:
    """One read of the fresh cached list, with the generation seen at that moment.

    `connections` is None on a miss. `generation` is opaque: hand it back to
    `ConnectionCache.store_if_unchanged` so a list read before an invalidation
    is not cached after it.
    """

    connections: Sequence[uuid.UUID] | None
    generation: bytes


class ConnectionCache(Protocol):
    """The cache of users' accepted connections in front of the `ConnectionSource`.

    A fresh copy (short TTL, dropped on invalidation) and a stale copy (long TTL,
    kept on invalidation: the fallback while the source is failing).
    """

    async def read(self, user_id: uuid.UUID) -> CachedConnections:
        """The fresh copy, if any, and the current generation."""
        ...

    async def store_if_unchanged(
        self, user_id: uuid.UUID, connections: Sequence[uuid.UUID], generation: bytes
    ) -> bool:
        """Store both copies unless an invalidation bumped the generation since the read;
        returns whether they were stored."""
        ...

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        """Drop the fresh copies and bump the generations; the stale copies stay."""
        ...

    async def read_stale(self, user_id: uuid.UUID) -> Sequence[uuid.UUID] | None:
        """The stale copy, if any."""
        ...
