"""Outages pause the workers instead of spending messages as dead letters.

Each test runs one pipeline's real worker (the composition root's handler under
the SQS runtime, moto over HTTP) against private PostgreSQL and Redis servers,
stops one dependency under load for longer than a message's whole retry budget,
brings it back, and checks that the worker told the truth meanwhile (not
ready), that nothing reached the dead-letter queue, and that every event took
effect once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from config.clients import open_sns, open_sqs
from config.settings import Settings
from config.worker import build_handler, consumer_options, pipeline_queue
from consumers.publish import send_raw
from consumers.runtime import SqsConsumer
from consumers.topology import Topology, ensure_topology
from contracts.events import (
    Envelope,
)
from contracts.keys import feed_key, unread_notifications_key
from tests.factories import connection_requested, post_created, profile_updated
from tests.integration.consumers.helpers import depth
from tests.outage.servers import StoppablePostgres, StoppableRedis
from tests.settings import SettingsFactory

# Longer than a message's whole budget with the test timings: 4 receives with
# visibility backoffs of at most 2 s would dead-letter it within about 6 s.
OUTAGE_SECONDS = 8.0
EVENTS_BEFORE = 10
EVENTS_DURING = 10


@dataclass
class Scenario:
    """One pipeline's events and how to tell that each took effect."""

    seed: Callable[[asyncpg.Connection], Awaitable[list[Envelope]]]
    took_effect: Callable[
        [asyncpg.Connection, redis_asyncio.Redis, list[Envelope]], Awaitable[bool]
    ]


async def _users(conn: asyncpg.Connection, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    await conn.executemany(
        "INSERT INTO users (id, email) VALUES ($1, $2)", [(u, f"{u}@example.test") for u in ids]
    )
    return ids


async def _seed_feed(conn: asyncpg.Connection) -> list[Envelope]:
    author, *friends = await _users(conn, 6)
    await conn.executemany(
        "INSERT INTO connections (requester_id, addressee_id, status) VALUES ($1, $2, 'accepted')",
        [(author, f) for f in friends],
    )
    events = []
    for _ in range(EVENTS_BEFORE + EVENTS_DURING):
        post = await conn.fetchval(
            "INSERT INTO posts (author_id, text_content) VALUES ($1, 'x') RETURNING id", author
        )
        events.append(post_created(post_id=post, author_id=author))
    return events


async def _feeds_hold_each_post_once(
    conn: asyncpg.Connection, redis: redis_asyncio.Redis, events: list[Envelope]
) -> bool:
    author = events[0].payload.author_id  # type: ignore[union-attr]
    friends = await conn.fetch(
        "SELECT addressee_id FROM connections WHERE requester_id = $1", author
    )
    expected = sorted(str(e.payload.post_id) for e in events)  # type: ignore[union-attr]
    for row in friends:
        raw = await redis.lrange(feed_key(row["addressee_id"]), 0, -1)
        held = [v.decode() if isinstance(v, bytes) else v for v in raw]
        if sorted(held) != expected:
            return False
    return True


async def _seed_search(conn: asyncpg.Connection) -> list[Envelope]:
    users = await _users(conn, EVENTS_BEFORE + EVENTS_DURING)
    await conn.executemany(
        "INSERT INTO user_profiles (user_id, full_name, headline) VALUES ($1, $2, 'Engineer')",
        [(u, f"User {i}") for i, u in enumerate(users)],
    )
    return [profile_updated(user_id=u) for u in users]


async def _every_profile_indexed(
    conn: asyncpg.Connection, _: redis_asyncio.Redis, events: list[Envelope]
) -> bool:
    ids = [e.payload.user_id for e in events]  # type: ignore[union-attr]
    found = await conn.fetchval(
        "SELECT count(*) FROM search_documents WHERE user_id = ANY($1::uuid[]) AND NOT deleted",
        ids,
    )
    return int(found) == len(ids)


async def _seed_notifications(conn: asyncpg.Connection) -> list[Envelope]:
    addressee, *requesters = await _users(conn, 1 + EVENTS_BEFORE + EVENTS_DURING)
    return [connection_requested(requester_id=r, addressee_id=addressee) for r in requesters]


async def _every_notification_counted_once(
    conn: asyncpg.Connection, redis: redis_asyncio.Redis, events: list[Envelope]
) -> bool:
    addressee = events[0].payload.addressee_id  # type: ignore[union-attr]
    rows = await conn.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", addressee)
    unread = int(await redis.get(unread_notifications_key(addressee)) or 0)
    return int(rows) == len(events) and unread == len(events)


SCENARIOS = {
    "feed": Scenario(_seed_feed, _feeds_hold_each_post_once),
    "search": Scenario(_seed_search, _every_profile_indexed),
    "notifications": Scenario(_seed_notifications, _every_notification_counted_once),
}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def _worker(
    stack: AsyncExitStack, settings: Settings, pipeline: str
) -> tuple[Any, Topology, SqsConsumer]:
    sqs = await open_sqs(stack, settings)
    topo = await ensure_topology(sqs, await open_sns(stack, settings), settings)
    queue = pipeline_queue(settings, pipeline)
    handler = await build_handler(stack, settings, pipeline)
    consumer = SqsConsumer(
        sqs,
        queue_name=queue,
        queue_url=topo.queue_url(queue),
        dlq_url=topo.dlq_url(queue),
        handler=handler,
        options=consumer_options(settings),
        concurrency=8,
    )
    return sqs, topo, consumer


async def _until(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.1)


async def _stop(server: StoppablePostgres | StoppableRedis) -> None:
    # keep_data: the question here is pausing, not a cache node losing its data.
    if isinstance(server, StoppableRedis):
        await asyncio.to_thread(server.stop, keep_data=True)
    else:
        await asyncio.to_thread(server.stop)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("pipeline", "dependency"),
    [
        ("feed", "redis"),
        ("feed", "postgres"),
        ("search", "postgres"),
        ("notifications", "postgres"),
        ("notifications", "redis"),
    ],
)
async def test_an_outage_longer_than_the_retry_budget_costs_no_dead_letter(
    pipeline: str,
    dependency: str,
    aws: str,
    stack: AsyncExitStack,
    stoppable_redis: StoppableRedis,
    stoppable_postgres: StoppablePostgres,
    outage_settings: SettingsFactory,
    outage_database_url: str,
) -> None:
    # GIVEN a worker over its real dependencies, with events of its pipeline queued
    settings = outage_settings(aws_endpoint_url=aws)
    scenario = SCENARIOS[pipeline]
    conn = await asyncpg.connect(outage_database_url)
    try:
        events = await scenario.seed(conn)
    finally:
        await conn.close()
    sqs, topo, consumer = await _worker(stack, settings, pipeline)
    queue_url = topo.queue_url(pipeline_queue(settings, pipeline))
    dlq_url = topo.dlq_url(pipeline_queue(settings, pipeline))
    server = stoppable_redis if dependency == "redis" else stoppable_postgres
    running = asyncio.create_task(consumer.run())
    try:
        for event in events[:EVENTS_BEFORE]:
            await send_raw(sqs, queue_url, event.to_json(), event.attributes())
        await _until(lambda: _is(consumer.ready), within=15, what="worker ready")

        # WHEN the dependency stops under load, for longer than the retry budget
        await _stop(server)
        for event in events[EVENTS_BEFORE:]:
            await send_raw(sqs, queue_url, event.to_json(), event.attributes())
        # THEN readiness tells the truth while it is down
        await _until(lambda: _is(not consumer.ready), within=10, what="worker unready")
        await asyncio.sleep(OUTAGE_SECONDS)
        assert not consumer.ready
        assert await depth(sqs, dlq_url) == 0

        # WHEN it comes back
        await asyncio.to_thread(server.start)

        # THEN work resumes by itself: every event took effect once, none was dead-lettered
        async def all_done() -> bool:
            conn = await asyncpg.connect(outage_database_url)
            redis = redis_asyncio.Redis.from_url(stoppable_redis.url)
            try:
                return await depth(sqs, queue_url) == 0 and await scenario.took_effect(
                    conn, redis, events
                )
            finally:
                await conn.close()
                await redis.aclose()

        await _until(all_done, within=60, what="every event took effect")
        assert consumer.ready
        assert await depth(sqs, dlq_url) == 0
    finally:
        consumer.request_stop()
        await asyncio.wait_for(running, 30)


async def _is(value: bool) -> bool:
    return value
