"""The feed worker with DATABASE_READ_URL on a real streaming replica.

The handler is the one `config.feed.build_feed_handler` builds from settings:
its reads go to the replica, and a post the replica has not replayed yet is
found on the primary after a bounded wait, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from config.feed import build_feed_handler
from contracts.outcomes import ACK, DeadLetter
from pipelines.feed.handler import FeedHandler
from store.replica import DEFAULT_MAX_WAIT
from tests.replica.data import add_post, add_user, connect, post_created, reads_since, replica_reads
from tests.replica.replication import Replication

FRIENDS = 3


@pytest.fixture
async def handler(replicated: Replication) -> AsyncIterator[FeedHandler]:
    async with AsyncExitStack() as stack:
        yield await build_feed_handler(stack, replicated.settings())


async def author_with_friends(db: Replication) -> tuple[uuid.UUID, list[uuid.UUID]]:
    author = await add_user(db.primary, "author")
    friends = [await add_user(db.primary, f"friend{i}") for i in range(FRIENDS)]
    await connect(db.primary, author, friends)
    await db.caught_up()
    return author, friends


async def feeds_holding(db: Replication, post_id: uuid.UUID, users: list[uuid.UUID]) -> int:
    lists = [await db.redis.lrange(f"feed:{u}", 0, -1) for u in users]
    return sum(str(post_id).encode() in entries for entries in lists)


async def test_a_replayed_post_is_read_on_the_replica_and_fanned_out(
    replicated: Replication, handler: FeedHandler
) -> None:
    author, friends = await author_with_friends(replicated)
    post, created = await add_post(replicated.primary, author)
    await replicated.caught_up()
    before = replica_reads("feed")
    assert await handler.handle([post_created(post, author, created)]) == [ACK]
    assert await feeds_holding(replicated, post, friends) == FRIENDS
    assert reads_since("feed", before) == {
        "replica": 1,
        "replica_after_wait": 0,
        "primary_fallback": 0,
    }


async def test_a_paused_replica_falls_back_to_the_primary_then_serves_again(
    replicated: Replication, handler: FeedHandler
) -> None:
    author, friends = await author_with_friends(replicated)
    await replicated.pause_replay()
    post, created = await add_post(replicated.primary, author)
    assert not await replicated.replica.fetchval("SELECT count(*) FROM posts")

    before = replica_reads("feed")
    started = time.monotonic()
    assert await handler.handle([post_created(post, author, created)]) == [ACK]
    waited = time.monotonic() - started
    assert await feeds_holding(replicated, post, friends) == FRIENDS
    assert reads_since("feed", before)["primary_fallback"] == 1
    # The wait is bounded: about DEFAULT_MAX_WAIT, not a timeout's worth.
    assert DEFAULT_MAX_WAIT <= waited < DEFAULT_MAX_WAIT + 1.0

    missing = uuid.uuid4()
    [outcome] = await handler.handle([post_created(missing, author, created)])
    assert isinstance(outcome, DeadLetter) and outcome.error_type == "UnknownEntity"
    assert reads_since("feed", before)["primary_fallback"] == 2

    await replicated.resume_replay()
    await replicated.caught_up()
    later, later_created = await add_post(replicated.primary, author)
    await replicated.caught_up()
    resumed = replica_reads("feed")
    assert await handler.handle([post_created(later, author, later_created)]) == [ACK]
    assert await feeds_holding(replicated, later, friends) == FRIENDS
    assert reads_since("feed", resumed) == {
        "replica": 1,
        "replica_after_wait": 0,
        "primary_fallback": 0,
    }


async def test_a_replica_resumed_during_the_wait_serves_the_post(
    replicated: Replication, handler: FeedHandler
) -> None:
    author, friends = await author_with_friends(replicated)
    await replicated.pause_replay()
    post, created = await add_post(replicated.primary, author)

    async def resume_soon() -> None:
        await asyncio.sleep(0.2)
        await replicated.resume_replay()

    before = replica_reads("feed")
    started = time.monotonic()
    resuming = asyncio.create_task(resume_soon())
    assert await handler.handle([post_created(post, author, created)]) == [ACK]
    waited = time.monotonic() - started
    await resuming
    assert await feeds_holding(replicated, post, friends) == FRIENDS
    assert reads_since("feed", before) == {
        "replica": 0,
        "replica_after_wait": 1,
        "primary_fallback": 0,
    }
    assert 0.2 <= waited < DEFAULT_MAX_WAIT
