"""Builders for feed pipeline integration tests: users, connections, events."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio.cluster import RedisCluster

from config.feed import FeedRedis, build_feed_handler
from contracts.events import Envelope, PostCreated
from contracts.keys import connections_cache_key, feed_key
from pipelines.feed.handler import FeedHandler
from pipelines.feed.ports import ConnectionSource
from pipelines.feed.redis_cache import slots_cache_key
from tests.factories import post_created
from tests.fakes import FakeClock
from tests.settings import make_settings


async def add_users(db: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "users", records=[(u, f"{u}@example.test") for u in ids], columns=["id", "email"]
        )
    return ids


async def connect(
    db: asyncpg.Pool, requester: uuid.UUID, addressees: list[uuid.UUID], status: str = "accepted"
) -> None:
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "connections",
            records=[(requester, a, status) for a in addressees],
            columns=["requester_id", "addressee_id", "status"],
        )


async def create_post(
    db: asyncpg.Pool, author: uuid.UUID, *, occurred_at: datetime | None = None
) -> Envelope:
    """A post of `author` stored in PostgreSQL, and its PostCreated envelope.

    The feed handler fans out only posts PostgreSQL has (by that author): events
    handled with PostgreSQL as the connection source need the row.
    """
    event = post_created(author_id=author, occurred_at=occurred_at)
    await db.execute(
        "INSERT INTO posts (id, author_id, text_content) VALUES ($1, $2, 'x')",
        uuid.UUID(post_id(event)),
        author,
    )
    return event


def cached_connections_key(client: FeedRedis, user: uuid.UUID) -> str:
    """Where the feed worker caches `user`'s connections: in slot order on a cluster."""
    if isinstance(client, RedisCluster):
        return slots_cache_key(user)
    return connections_cache_key(user)


async def feed(client: FeedRedis, user: uuid.UUID) -> list[str]:
    return [_text(v) for v in await client.lrange(feed_key(user), 0, -1)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def post_id(event: Envelope) -> str:
    """The post id of a PostCreated envelope, as feeds hold it."""
    assert isinstance(event.payload, PostCreated)
    return str(event.payload.post_id)


async def build(
    stack: AsyncExitStack,
    client: FeedRedis | None,
    *,
    source: ConnectionSource | None = None,
    clock: FakeClock | None = None,
    **overrides: Any,
) -> FeedHandler:
    """A feed handler on the test services (PostgreSQL unless `source` is given)."""
    return await build_feed_handler(
        stack,
        make_settings(**overrides),
        connection_source=source,
        redis=client,
        clock=clock,
    )
