"""The feed handler end to end on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from config.feed import FeedRedis
from contracts.events import utcnow
from contracts.keys import feed_key
from contracts.outcomes import ACK, DeadLetter, Retry
from tests.factories import connection_accepted, post_created, profile_updated
from tests.integration.pipelines.feed.helpers import (
    add_users,
    build,
    cached_connections_key,
    connect,
    create_post,
    feed,
    post_id,
)

LATENCY_LABELS = {"pipeline": "feed", "event_type": "PostCreated"}


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def test_connections_in_both_directions_get_the_post_at_the_head(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an author who asked one user and was asked by another, both accepted,
    # and whose feeds already hold an older post
    author, asked, asker = await add_users(db, 3)
    await connect(db, author, [asked])
    await connect(db, asker, [author])
    for user in (asked, asker):
        await feed_redis.lpush(feed_key(user), "older-post")
    handler = await build(stack, feed_redis)
    event = await create_post(db, author)
    latency_before = _sample("socialpipe_end_to_end_latency_seconds_count", LATENCY_LABELS)
    written_before = _sample("socialpipe_fanout_targets_written_total")

    # WHEN the post is handled
    outcomes = await handler.handle([event])

    # THEN both connections have it at the head, the author does not,
    # and the latency and fan-out counters moved
    assert outcomes == [ACK]
    assert _sample("socialpipe_end_to_end_latency_seconds_count", LATENCY_LABELS) == (
        latency_before + 1
    )
    assert _sample("socialpipe_fanout_targets_written_total") == written_before + 2
    post = post_id(event)
    assert await feed(feed_redis, asked) == [post, "older-post"]
    assert await feed(feed_redis, asker) == [post, "older-post"]
    assert await feed(feed_redis, author) == []


async def test_post_missing_from_postgres_or_of_another_author_is_dead_lettered_unsent(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an author with a connection, an event naming a post PostgreSQL does not
    # have, and an event naming a stored post under the wrong author
    author, friend, other = await add_users(db, 3)
    await connect(db, author, [friend])
    handler = await build(stack, feed_redis)
    missing = post_created(author_id=author)
    stored = await create_post(db, other)
    misattributed = post_created(author_id=author, post_id=uuid.UUID(post_id(stored)))

    # WHEN both are handled
    outcomes = await handler.handle([missing, misattributed])

    # THEN each is dead-lettered as an unknown entity naming its post, and nobody got it
    for event, outcome in zip([missing, misattributed], outcomes, strict=True):
        assert isinstance(outcome, DeadLetter)
        assert outcome.error_type == "UnknownEntity"
        assert post_id(event) in outcome.reason
    assert await feed(feed_redis, friend) == []


async def test_pending_declined_and_strangers_get_nothing(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN one accepted, one pending, one declined connection and a stranger
    author, friend, pending, declined, stranger = await add_users(db, 5)
    await connect(db, author, [friend])
    await connect(db, author, [pending], status="pending")
    await connect(db, declined, [author], status="declined")
    handler = await build(stack, feed_redis)

    # WHEN a post is handled
    assert await handler.handle([await create_post(db, author)]) == [ACK]

    # THEN only the accepted connection has a feed
    assert len(await feed(feed_redis, friend)) == 1
    for user in (pending, declined, stranger):
        assert await feed(feed_redis, user) == []


async def test_duplicate_delivery_leaves_one_entry_per_feed(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an author with connections spread over several batches
    author, *friends = await add_users(db, 26)
    await connect(db, author, friends)
    handler = await build(stack, feed_redis, fanout_batch_size=10)
    event = await create_post(db, author)

    # WHEN the same event is handled three times
    for _ in range(3):
        assert await handler.handle([event]) == [ACK]

    # THEN every feed holds the post exactly once
    post = post_id(event)
    for friend in friends:
        assert await feed(feed_redis, friend) == [post]


async def test_author_with_12000_connections_reaches_all(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an author with 12,000 accepted connections, half in each direction
    author, *friends = await add_users(db, 12_001)
    await connect(db, author, friends[:6000])
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "connections",
            records=[(f, author, "accepted") for f in friends[6000:]],
            columns=["requester_id", "addressee_id", "status"],
        )
    handler = await build(stack, feed_redis)

    # WHEN a post is handled
    event = await create_post(db, author)
    assert await handler.handle([event]) == [ACK]

    # THEN every one of them has it
    post = post_id(event).encode()
    async with feed_redis.pipeline(transaction=False) as pipe:
        for friend in friends:
            pipe.lindex(feed_key(friend), 0)
        heads = await pipe.execute()
    assert heads.count(post) == 12_000


async def test_feed_is_capped_with_newest_at_head(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN a feed limit of 5 and a feed already over it (limit lowered later)
    author, friend = await add_users(db, 2)
    await connect(db, author, [friend])
    await feed_redis.rpush(feed_key(friend), *[f"old-{i}" for i in range(9)])
    handler = await build(stack, feed_redis, feed_max_length=5)

    # WHEN 8 posts are handled
    events = [await create_post(db, author) for _ in range(8)]
    for event in events:
        assert await handler.handle([event]) == [ACK]

    # THEN the feed holds exactly the 5 newest, newest first
    newest = [post_id(e) for e in reversed(events)][:5]
    assert await feed(feed_redis, friend) == newest


async def test_wrong_type_key_fails_only_that_target_and_redelivery_completes_it(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN one connection whose feed key holds a string, in a batch with others
    author, broken, *others = await add_users(db, 8)
    await connect(db, author, [broken, *others])
    await feed_redis.set(feed_key(broken), "not a list")
    handler = await build(stack, feed_redis, fanout_batch_size=3)
    event = await create_post(db, author)
    post = post_id(event)

    # WHEN handled
    [outcome] = await handler.handle([event])

    # THEN the others are served, the outcome is a retry naming the broken target
    assert isinstance(outcome, Retry)
    assert str(broken) in outcome.reason
    for user in others:
        assert await feed(feed_redis, user) == [post]

    # WHEN the key is fixed and the event delivered again
    await feed_redis.delete(feed_key(broken))
    assert await handler.handle([event]) == [ACK]

    # THEN the missing target has it and nobody got it twice
    for user in [broken, *others]:
        assert await feed(feed_redis, user) == [post]


async def test_old_event_is_handled_carefully_skipping_feeds_that_hold_the_post(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an event older than the marker TTL whose post already reached one feed,
    # and no marker left (it expired)
    author, reached, missed = await add_users(db, 3)
    await connect(db, author, [reached, missed])
    event = await create_post(db, author, occurred_at=utcnow() - timedelta(days=2))
    post = post_id(event)
    await feed_redis.lpush(feed_key(reached), post, "newer-post")
    handler = await build(stack, feed_redis)

    # WHEN handled
    assert await handler.handle([event]) == [ACK]

    # THEN the reached feed is untouched and the missed one got the post
    assert await feed(feed_redis, reached) == ["newer-post", post]
    assert await feed(feed_redis, missed) == [post]


async def test_connection_accepted_invalidates_both_cached_lists(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN two users whose connection lists are cached (each posted once)
    a, b, c = await add_users(db, 3)
    await connect(db, a, [c])
    handler = await build(stack, feed_redis)
    for author in (a, b):
        assert await handler.handle([await create_post(db, author)]) == [ACK]
        assert await feed_redis.exists(cached_connections_key(feed_redis, author))

    # WHEN a and b connect and the event is handled
    await connect(db, a, [b])
    assert await handler.handle([connection_accepted(requester_id=a, addressee_id=b)]) == [ACK]

    # THEN both caches are gone and the next post of b reaches a
    for user in (a, b):
        assert not await feed_redis.exists(cached_connections_key(feed_redis, user))
    event = await create_post(db, b)
    assert await handler.handle([event]) == [ACK]
    assert (await feed(feed_redis, a))[0] == post_id(event)


async def test_other_event_types_are_acknowledged_and_ignored(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    handler = await build(stack, feed_redis)
    event = profile_updated()

    assert await handler.handle([event]) == [ACK]
    assert await feed_redis.dbsize() == 0


async def test_occurred_at_without_offset_is_read_as_utc(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN an event whose occurredAt carries no UTC offset
    author, friend = await add_users(db, 2)
    await connect(db, author, [friend])
    handler = await build(stack, feed_redis)
    event = await create_post(db, author, occurred_at=utcnow().replace(tzinfo=None))

    # WHEN handled THEN it is fanned out like any other
    assert await handler.handle([event]) == [ACK]
    assert await feed(feed_redis, friend) == [post_id(event)]


async def test_more_concurrent_fan_outs_than_redis_connections_all_succeed(
    db: asyncpg.Pool, feed_redis: FeedRedis, feed_redis_url: str, stack: AsyncExitStack
) -> None:
    # GIVEN a handler on its own Redis pool (20 connections with parallelism 1)
    # and 40 authors posting at the same moment
    authors = await add_users(db, 40)
    friend, *_ = await add_users(db, 1)
    for author in authors:
        await connect(db, author, [friend])
    handler = await build(stack, None, redis_url=feed_redis_url, fanout_parallelism=1)
    events = [await create_post(db, author) for author in authors]

    # WHEN all are handled concurrently
    outcomes = await asyncio.gather(*(handler.handle([e]) for e in events))

    # THEN none failed for lack of a connection, and the friend got every post
    assert outcomes == [[ACK]] * 40
    assert sorted(await feed(feed_redis, friend)) == sorted(post_id(e) for e in events)
