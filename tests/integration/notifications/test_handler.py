"""The notifications handler against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from config.notifications import build_notifications_handler
from config.settings import Settings
from contracts.keys import notifications_channel, unread_notifications_key
from contracts.outcomes import ACK, Retry
from pipelines.notifications.handler import NotificationsHandler
from pipelines.notifications.plan import plan_notification
from pipelines.notifications.postgres import PgNotificationStore
from pipelines.notifications.redis_counters import RedisUnreadCounters
from store.notifications import mark_all_read
from tests.factories import (
    comment_created,
    connection_accepted,
    connection_requested,
    post_created,
)
from tests.integration.outcomes import outcomes_of


async def new_user(db: asyncpg.Pool) -> uuid.UUID:
    return await db.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@example.com"
    )


def handler_for(db: asyncpg.Pool, redis: Any) -> NotificationsHandler:
    return NotificationsHandler(PgNotificationStore(db), RedisUnreadCounters(redis))


async def rows_for(db: asyncpg.Pool, user: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(  # type: ignore[no-any-return]
        "SELECT kind, actor_id, subject_id FROM notifications WHERE user_id = $1", user
    )


async def unread(redis: Any, user: uuid.UUID) -> int:
    return int(await redis.get(unread_notifications_key(user)) or 0)


async def test_connection_request_notifies_the_addressee_once_however_often_delivered(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, settings: Settings
) -> None:
    # GIVEN two users and a handler built by the composition root
    a, b = await new_user(db), await new_user(db)
    event = connection_requested(requester_id=a, addressee_id=b)
    async with AsyncExitStack() as stack:
        handler = await build_notifications_handler(stack, settings, pool=db, redis=redis_client)
        # WHEN the same request event is delivered three times
        outcomes = [o for _ in range(3) for o in await handler.handle([event])]
    # THEN the addressee has one row and an unread count of one; the requester nothing
    assert outcomes == [ACK, ACK, ACK]
    assert [(r["kind"], r["actor_id"]) for r in await rows_for(db, b)] == [
        ("connection_requested", a)
    ]
    assert await unread(redis_client, b) == 1
    assert await rows_for(db, a) == []


async def test_acceptance_notifies_the_requester(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN B accepted A's request
    a, b = await new_user(db), await new_user(db)
    event = connection_accepted(requester_id=a, addressee_id=b)
    # WHEN the acceptance is handled
    assert await handler_for(db, redis_client).handle([event]) == [ACK]
    # THEN the requester A is told, by B
    assert [(r["kind"], r["actor_id"]) for r in await rows_for(db, a)] == [
        ("connection_accepted", b)
    ]
    assert await unread(redis_client, a) == 1


async def test_comment_notifies_the_post_author_but_not_for_ones_own_comment(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN an author, a commenter, and comments by both on the author's post
    author, other = await new_user(db), await new_user(db)
    events = [
        comment_created(author_id=other, post_author_id=author),
        comment_created(author_id=author, post_author_id=author),
    ]
    # WHEN both are handled
    assert await handler_for(db, redis_client).handle(events) == [ACK, ACK]
    # THEN only the other user's comment notifies the author
    rows = await rows_for(db, author)
    assert [(r["kind"], r["actor_id"]) for r in rows] == [("comment_created", other)]
    assert rows[0]["subject_id"] == events[0].payload.post_id  # type: ignore[union-attr]
    assert await unread(redis_client, author) == 1


async def test_events_that_notify_nobody_are_acknowledged(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a post event and a request addressed to a user who no longer exists
    a = await new_user(db)
    post = post_created(author_id=a)
    ghost = connection_requested(requester_id=a)
    # WHEN they are handled THEN both are acked and nothing is written
    assert await handler_for(db, redis_client).handle([post, ghost]) == [ACK, ACK]
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0


async def test_redelivery_after_a_crash_before_counting_counts_once(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a row written by a worker that died before touching the counter
    a, b = await new_user(db), await new_user(db)
    event = connection_requested(requester_id=a, addressee_id=b)
    notification = plan_notification(event)
    assert notification is not None
    assert await PgNotificationStore(db).save(notification)
    # WHEN the message comes back twice
    handler = handler_for(db, redis_client)
    await handler.handle([event])
    await handler.handle([event])
    # THEN the counter counts it exactly once
    assert await unread(redis_client, b) == 1


async def test_redelivery_of_an_already_read_notification_does_not_count(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a row the user read before its counter was updated
    a, b = await new_user(db), await new_user(db)
    event = connection_requested(requester_id=a, addressee_id=b)
    notification = plan_notification(event)
    assert notification is not None
    await PgNotificationStore(db).save(notification)
    async with db.acquire() as conn:
        assert await mark_all_read(conn, b) == 0
    # WHEN the message is redelivered
    await handler_for(db, redis_client).handle([event])
    # THEN the unread counter stays at zero
    assert await unread(redis_client, b) == 0


async def test_new_notification_is_announced_on_the_users_channel(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a subscriber on B's live channel
    a, b = await new_user(db), await new_user(db)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(notifications_channel(b))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    # WHEN a request to B is handled
    event = connection_requested(requester_id=a, addressee_id=b)
    await handler_for(db, redis_client).handle([event])
    # THEN the subscriber hears about it
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert message is not None
    assert orjson.loads(message["data"])["eventId"] == str(event.event_id)


async def test_unreachable_redis_asks_for_a_retry(db: asyncpg.Pool) -> None:
    # GIVEN a Redis that does not answer
    a, b = await new_user(db), await new_user(db)
    dead = redis_asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    event = connection_requested(requester_id=a, addressee_id=b)
    # WHEN an event is handled as the worker does
    [outcome] = await asyncio.wait_for(outcomes_of(handler_for(db, dead), [event]), 10)
    await dead.aclose()
    # THEN the message is retried later for a Redis outage rather than dead-lettered
    # or lost, and the reason names what failed
    assert isinstance(outcome, Retry)
    assert outcome.outage == "Redis"
    assert outcome.reason.startswith("Counting an unread notification in Redis failed: ")
