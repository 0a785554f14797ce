"""`reconcile notifications`: rows from connections and comments, counters from rows."""

from __future__ import annotations

import uuid

import asyncpg
import redis.asyncio as redis_asyncio

from contracts.events import Envelope
from contracts.keys import unread_notifications_key
from contracts.outcomes import ACK
from pipelines.notifications.handler import NotificationsHandler
from pipelines.notifications.postgres import PgNotificationStore
from pipelines.notifications.redis_counters import RedisUnreadCounters
from reconcile.notifications import NotificationReconcileOptions, NotificationReconciler
from tests.factories import comment_created, connection_accepted, connection_requested
from tests.integration.pipelines.feed.helpers import add_users


def reconciler(
    db: asyncpg.Pool, client: redis_asyncio.Redis, *, dry_run: bool = False
) -> NotificationReconciler:
    return NotificationReconciler(
        db, client, NotificationReconcileOptions(batch_size=3, dry_run=dry_run)
    )


async def request(db: asyncpg.Pool, requester: uuid.UUID, addressee: uuid.UUID) -> Envelope:
    row = await db.fetchrow(
        "INSERT INTO connections (requester_id, addressee_id) VALUES ($1, $2)"
        " RETURNING id, created_at",
        requester,
        addressee,
    )
    assert row is not None
    return connection_requested(
        connection_id=row["id"],
        requester_id=requester,
        addressee_id=addressee,
        created_at=row["created_at"],
    )


async def accept(db: asyncpg.Pool, requester: uuid.UUID, addressee: uuid.UUID) -> Envelope:
    connection = await db.fetchval(
        "INSERT INTO connections (requester_id, addressee_id, status, responded_at)"
        " VALUES ($1, $2, 'accepted', now()) RETURNING id",
        requester,
        addressee,
    )
    return connection_accepted(
        connection_id=connection, requester_id=requester, addressee_id=addressee
    )


async def comment(db: asyncpg.Pool, author: uuid.UUID, post: uuid.UUID) -> Envelope:
    row = await db.fetchrow(
        "INSERT INTO comments (post_id, author_id) VALUES ($1, $2) RETURNING id, created_at",
        post,
        author,
    )
    assert row is not None
    post_author = await db.fetchval("SELECT author_id FROM posts WHERE id = $1", post)
    return comment_created(
        comment_id=row["id"],
        post_id=post,
        author_id=author,
        post_author_id=post_author,
        created_at=row["created_at"],
    )


async def activity(db: asyncpg.Pool) -> tuple[list[uuid.UUID], list[Envelope]]:
    """Five users, and the events of a pending request, an acceptance and three comments
    (two by one author on one post, one on one's own post, which tells nobody)."""
    a, b, c, d, e = await add_users(db, 5)
    post = await db.fetchval("INSERT INTO posts (author_id) VALUES ($1) RETURNING id", a)
    events = [
        await request(db, b, a),
        await accept(db, c, d),
        await comment(db, e, post),
        await comment(db, e, post),
        await comment(db, a, post),
    ]
    return [a, b, c, d, e], events


async def deliver(db: asyncpg.Pool, client: redis_asyncio.Redis, events: list[Envelope]) -> None:
    handler = NotificationsHandler(PgNotificationStore(db), RedisUnreadCounters(client))
    assert await handler.handle(events) == [ACK] * len(events)


async def counters(client: redis_asyncio.Redis, users: list[uuid.UUID]) -> list[int]:
    raw = await client.mget([unread_notifications_key(u) for u in users])
    return [int(v or 0) for v in raw]


async def test_notifications_the_worker_wrote_report_no_drift(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN every event delivered to the live handler, one of them twice
    users, events = await activity(db)
    await deliver(db, redis_client, [*events, events[2]])
    # WHEN a dry run checks every user
    report = await reconciler(db, redis_client, dry_run=True).run()
    # THEN no row is missing and every counter is right
    assert (report.checked, report.missing, report.counters) == (5, 0, 0)
    assert await counters(redis_client, users) == [3, 0, 1, 0, 0]


async def test_missing_rows_and_wrong_counters_are_reported_then_repaired_once(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN the request and one comment delivered, the rest lost, and a counter garbled
    users, events = await activity(db)
    await deliver(db, redis_client, [events[0], events[2]])
    await redis_client.set(unread_notifications_key(users[4]), 7)
    # WHEN a dry run checks
    dry = await reconciler(db, redis_client, dry_run=True).run()
    # THEN the acceptance and the second comment are missing; three counters are wrong
    # (a: 2 of 3 counted, c: none of 1, e: 7 instead of 0)
    assert (dry.missing, dry.counters, dry.repaired) == (2, 3, 0)
    assert await db.fetchval("SELECT count(*) FROM notifications") == 2
    # WHEN it repairs
    fixed = await reconciler(db, redis_client).run()
    # THEN the rows are written, the counters follow the rows, and a second run is clean
    assert (fixed.missing, fixed.counters, fixed.repaired, fixed.failed) == (2, 3, 5, 0)
    assert fixed.consistent
    assert await counters(redis_client, users) == [3, 0, 1, 0, 0]
    again = await reconciler(db, redis_client).run()
    assert (again.drift, again.repaired) == (0, 0)
    # WHEN the lost events arrive late at the live worker
    await deliver(db, redis_client, events)
    # THEN the shared (kind, source) key leaves one row per source and the counters as they were
    assert await db.fetchval("SELECT count(*) FROM notifications") == 4
    assert await counters(redis_client, users) == [3, 0, 1, 0, 0]
    assert (await reconciler(db, redis_client, dry_run=True).run()).drift == 0


async def test_read_notifications_are_not_counted(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN nothing delivered, and the rows reconciliation writes then read by their user
    users, _ = await activity(db)
    await reconciler(db, redis_client).run()
    await db.execute("UPDATE notifications SET read_at = now() WHERE user_id = $1", users[0])
    # WHEN reconciliation runs again
    report = await reconciler(db, redis_client).run()
    # THEN it sets the reader's counter to the rows still unread
    assert (report.missing, report.counters) == (0, 1)
    assert await counters(redis_client, users) == [0, 0, 1, 0, 0]


async def test_a_declined_request_expects_no_notification(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    a, b = await add_users(db, 2)
    await db.execute(
        "INSERT INTO connections (requester_id, addressee_id, status) VALUES ($1, $2, 'declined')",
        a,
        b,
    )
    report = await reconciler(db, redis_client, dry_run=True).run()
    assert (report.checked, report.drift) == (2, 0)
