"""The outbox relay against real PostgreSQL and a moto SNS/SQS server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import orjson
import pytest

from config.relay import build_relay
from config.settings import Settings
from consumers.topology import ensure_topology
from contracts.errors import TransientError
from contracts.events import Envelope
from contracts.metrics import OUTBOX_LAG
from pipelines.relay.ports import PublishResult
from pipelines.relay.relay import OutboxRelay, RelayOptions, RelayStuck
from store import outbox
from store.outbox import OutboxRow
from tests.factories import post_created

FAST = RelayOptions(batch_size=20, poll_interval=0.2, backoff_base=0.01, backoff_max=0.05)


async def enqueue_events(db: asyncpg.Pool, count: int) -> list[Envelope]:
    events = [post_created() for _ in range(count)]
    async with db.acquire() as conn, conn.transaction():
        for env in events:
            await outbox.enqueue(conn, env, env.payload.author_id)  # type: ignore[union-attr]
    return events


class RecordingPublisher:
    """Accepts everything and remembers what it saw."""

    def __init__(self) -> None:
        self.event_ids: list[uuid.UUID] = []
        self.published = asyncio.Event()

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        await asyncio.sleep(0)  # let a concurrent relay interleave
        self.event_ids.extend(r.event_id for r in rows)
        self.published.set()
        return PublishResult()


class FailingPublisher:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientError("SNS is down.")
        return PublishResult()


class HangingPublisher:
    """Blocks inside publish, the moment a crash would hit between claim and publish."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        self.entered.set()
        await asyncio.Event().wait()
        return PublishResult()


async def pending(db: asyncpg.Pool) -> int:
    async with db.acquire() as conn:
        return await outbox.pending_count(conn)


async def drain_queue(sqs: Any, url: str, expect: int, deadline: float = 10.0) -> list[bytes]:
    bodies: list[bytes] = []
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for m in got.get("Messages", []):
            bodies.append(m["Body"].encode())
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if len(bodies) >= expect and not got.get("Messages"):
            break
        if not got.get("Messages"):
            await asyncio.sleep(0.1)
    return bodies


async def test_enqueue_in_rolled_back_transaction_leaves_no_event(db: asyncpg.Pool) -> None:
    # GIVEN a unit of work that writes an event and then fails
    env = post_created()
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, env, "author")
            raise RuntimeError("the state change failed")
    # THEN the event is gone with it
    assert await pending(db) == 0


async def test_relay_publishes_pending_events_to_subscribed_queue(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN the topology and 25 pending events (more than one PublishBatch)
    topology = await ensure_topology(sqs, sns, settings)
    events = await enqueue_events(db, 25)
    # WHEN a burst relay runs over real SNS
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=FAST)
        await relay.run(asyncio.Event(), burst=True)
    # THEN every event reached the feed queue once, intact, and nothing is pending
    bodies = await drain_queue(sqs, topology.queue_url(settings.feed_queue), expect=25)
    got = sorted(orjson.loads(b)["eventId"] for b in bodies)
    assert got == sorted(str(e.event_id) for e in events)
    assert await pending(db) == 0
    assert OUTBOX_LAG._value.get() == 0.0


async def test_crash_between_claim_and_publish_loses_no_event(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN a relay that has claimed a row and is stuck publishing it
    topology = await ensure_topology(sqs, sns, settings)
    [env] = await enqueue_events(db, 1)
    hanging = HangingPublisher()
    crashed = OutboxRelay(db, hanging, FAST)
    task = asyncio.create_task(crashed.run(asyncio.Event()))
    await asyncio.wait_for(hanging.entered.wait(), 5)
    # WHEN the relay dies right there
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # THEN the row is still pending, and a restarted relay delivers it exactly once
    assert await pending(db) == 1
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=FAST)
        await relay.run(asyncio.Event(), burst=True)
    bodies = await drain_queue(sqs, topology.queue_url(settings.feed_queue), expect=1)
    assert [orjson.loads(b)["eventId"] for b in bodies] == [str(env.event_id)]


async def test_killed_connection_releases_claimed_rows(db: asyncpg.Pool, database_url: str) -> None:
    # GIVEN a session that claimed every pending row and then lost its connection
    await enqueue_events(db, 3)
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    assert len(await outbox.claim(conn, 10)) == 3
    pid = conn.get_server_pid()
    async with db.acquire() as admin:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        conn.terminate()
        # Termination is asynchronous: until the backend is gone its locks still hold.
        end = time.monotonic() + 10
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert time.monotonic() < end, "the terminated backend did not exit"
            await asyncio.sleep(0.02)
    # WHEN another relay claims
    async with db.acquire() as other, other.transaction():
        claimed = await outbox.claim(other, 10)
    # THEN it gets all three rows
    assert len(claimed) == 3


async def test_two_relays_never_publish_the_same_row(db: asyncpg.Pool) -> None:
    # GIVEN 200 pending events
    events = await enqueue_events(db, 200)
    first, second = RecordingPublisher(), RecordingPublisher()
    options = RelayOptions(batch_size=7, poll_interval=0.1)
    # WHEN two relays drain the outbox at once
    await asyncio.gather(
        OutboxRelay(db, first, options).run(asyncio.Event(), burst=True),
        OutboxRelay(db, second, options).run(asyncio.Event(), burst=True),
    )
    # THEN each event was published by exactly one of them
    assert not set(first.event_ids) & set(second.event_ids)
    assert sorted(first.event_ids + second.event_ids) == sorted(e.event_id for e in events)
    assert first.event_ids and second.event_ids


async def test_notify_wakes_an_idle_relay_without_waiting_for_the_poll(
    db: asyncpg.Pool, settings: Settings
) -> None:
    # GIVEN a relay idle on LISTEN with a one-minute fallback poll
    publisher = RecordingPublisher()
    async with AsyncExitStack() as stack:
        relay = await build_relay(
            stack, settings, publisher=publisher, pool=db, options=RelayOptions(poll_interval=60)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.3)  # let it reach its idle wait
        # WHEN an event is committed
        [env] = await enqueue_events(db, 1)
        started = time.monotonic()
        await asyncio.wait_for(publisher.published.wait(), 5)
        elapsed = time.monotonic() - started
        stop.set()
        await task
    # THEN it is published well within a second
    assert env.event_id in publisher.event_ids
    assert elapsed < 1.0


async def test_failed_publish_counts_attempts_and_retries_with_backoff(db: asyncpg.Pool) -> None:
    # GIVEN an event bus that refuses the first eight calls (two cycles of 1 + 3 in-process retries)
    await enqueue_events(db, 2)
    publisher = FailingPublisher(failures=8)
    options = RelayOptions(
        batch_size=10, inprocess_retry_base=0.001, backoff_base=0.01, backoff_max=0.02
    )
    # WHEN a burst relay runs
    await OutboxRelay(db, publisher, options).run(asyncio.Event(), burst=True)
    # THEN the events were published after the failures, each attempt counted
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT attempts, published_at FROM outbox")
    assert all(r["published_at"] is not None for r in rows)
    assert [r["attempts"] for r in rows] == [3, 3]


async def test_burst_relay_gives_up_when_the_bus_stays_down(db: asyncpg.Pool) -> None:
    # GIVEN an event bus that never accepts
    await enqueue_events(db, 1)
    options = RelayOptions(
        inprocess_retries=0, backoff_base=0.001, backoff_max=0.002, burst_max_failures=3
    )
    # WHEN a burst relay runs THEN it stops with a clear error and the event stays pending
    with pytest.raises(RelayStuck, match="after 3 attempts"):
        await OutboxRelay(db, FailingPublisher(10**6), options).run(asyncio.Event(), burst=True)
    assert await pending(db) == 1


async def test_lag_reports_the_oldest_pending_event_age(db: asyncpg.Pool) -> None:
    # GIVEN an event pending for ten seconds
    await enqueue_events(db, 1)
    async with db.acquire() as conn:
        await conn.execute("UPDATE outbox SET created_at = now() - interval '10 seconds'")
    # WHEN the lag is refreshed
    lag = await OutboxRelay(db, RecordingPublisher()).refresh_lag()
    # THEN both the value and the gauge show it
    assert 10 <= lag < 20
    assert OUTBOX_LAG._value.get() == lag
