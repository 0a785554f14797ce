"""Poison outbox rows are parked after repeated refusals instead of retried forever."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import orjson
from botocore.exceptions import ClientError

from config.logging import configure_logging
from config.relay import build_relay
from config.settings import Settings
from consumers.topology import ensure_topology
from contracts.errors import TransientError
from contracts.metrics import OUTBOX_PARKED, OUTBOX_PARKED_EVENTS
from pipelines.relay.ports import PublishResult
from pipelines.relay.relay import OutboxRelay, RelayOptions
from pipelines.relay.sns import SnsPublisher
from store import outbox
from store.outbox import OutboxRow
from tests.integration.relay.test_relay import drain_queue, enqueue_events


def fast(**overrides: int) -> RelayOptions:
    base = RelayOptions(
        poll_interval=0.05, inprocess_retries=0, backoff_base=0.001, backoff_max=0.002
    )
    return dataclasses.replace(base, **overrides)


class RefusingPublisher:
    """Refuses one event every time; accepts the rest."""

    def __init__(self, poison: uuid.UUID) -> None:
        self.poison = poison
        self.accepted: list[uuid.UUID] = []

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        reason = "InvalidParameter: message too long"
        refused = {r.id: reason for r in rows if r.event_id == self.poison}
        self.accepted.extend(r.event_id for r in rows if r.id not in refused)
        return PublishResult(refused=refused)


class OutagePublisher:
    """Unreachable for the first `calls` calls, then accepts everything."""

    def __init__(self, calls: int) -> None:
        self.left = calls

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        self.left -= 1
        if self.left >= 0:
            raise TransientError("SNS is down.")
        return PublishResult()


async def outbox_rows(db: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT event_id, attempts, refusals, published_at, parked_at, last_error"
        " FROM outbox ORDER BY id"
    )
    return rows


async def test_row_refused_max_attempts_times_is_parked_logged_and_counted(
    db: asyncpg.Pool,
) -> None:
    # GIVEN three pending events, one of which the bus always refuses, and captured logs
    events = await enqueue_events(db, 3)
    poison = events[1].event_id
    publisher = RefusingPublisher(poison)
    stream = io.StringIO()
    configure_logging("relay", "INFO", stream=stream)
    parked_before = OUTBOX_PARKED.labels("PostCreated")._value.get()
    # WHEN a burst relay with a limit of 4 attempts runs
    relay = OutboxRelay(db, publisher, fast(max_attempts=4))
    await asyncio.wait_for(relay.run(asyncio.Event(), burst=True), 10)
    # THEN the others went out at once, the poison row is parked after exactly 4 tries
    assert sorted(map(str, publisher.accepted)) == sorted(
        str(e.event_id) for e in events if e.event_id != poison
    )
    rows = {r["event_id"]: r for r in await outbox_rows(db)}
    bad = rows[poison]
    assert (bad["refusals"], bad["attempts"], bad["published_at"]) == (4, 4, None)
    assert bad["parked_at"] is not None and "message too long" in bad["last_error"]
    # AND nothing counts as pending any more, while the metric and a log line report it
    async with db.acquire() as conn:
        assert await outbox.pending_count(conn) == 0
        assert await outbox.lag_seconds(conn) == 0.0
    assert OUTBOX_PARKED.labels("PostCreated")._value.get() == parked_before + 1
    assert OUTBOX_PARKED_EVENTS._value.get() == 1
    parked_lines = [orjson.loads(x) for x in stream.getvalue().splitlines() if "parked" in x]
    assert [(x["message"], x["eventId"]) for x in parked_lines] == [
        ("outbox event parked", str(poison))
    ]


async def test_an_outage_longer_than_the_limit_parks_nothing(db: asyncpg.Pool) -> None:
    # GIVEN a pending event and a bus down for twice the attempt limit
    [env] = await enqueue_events(db, 1)
    options = fast(max_attempts=3, burst_max_failures=20)
    # WHEN a burst relay runs through the outage
    await asyncio.wait_for(
        OutboxRelay(db, OutagePublisher(6), options).run(asyncio.Event(), burst=True), 10
    )
    # THEN the event was published in the end, never parked or refused
    [row] = await outbox_rows(db)
    assert row["event_id"] == env.event_id
    assert row["published_at"] is not None and row["parked_at"] is None
    assert (row["refusals"], row["attempts"]) == (0, 7)


async def test_requeued_parked_rows_are_pending_again(db: asyncpg.Pool) -> None:
    # GIVEN a parked row
    [env] = await enqueue_events(db, 1)
    relay = OutboxRelay(db, RefusingPublisher(env.event_id), fast(max_attempts=1))
    await relay.run(asyncio.Event(), burst=True)
    async with db.acquire() as conn:
        assert (await outbox.pending_count(conn), await outbox.parked_count(conn)) == (0, 1)
        # WHEN an operator requeues it
        assert await outbox.requeue_parked(conn) == 1
        # THEN it is pending again with fresh refusals
        assert (await outbox.pending_count(conn), await outbox.parked_count(conn)) == (1, 0)
    [row] = await outbox_rows(db)
    assert row["refusals"] == 0


async def test_sns_relay_parks_an_undecodable_body_and_delivers_the_rest(
    db: asyncpg.Pool, settings: Settings, sqs: Any, sns: Any
) -> None:
    # GIVEN the topology, two good events and a row whose body is not an envelope
    topology = await ensure_topology(sqs, sns, settings)
    good = await enqueue_events(db, 2)
    await db.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_key, body)"
        " VALUES ($1, 'PostCreated', 'k', '{not json')",
        uuid.uuid4(),
    )
    # WHEN the real relay (SNS publisher) runs with a limit of two attempts
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=fast(max_attempts=2))
        await asyncio.wait_for(relay.run(asyncio.Event(), burst=True), 20)
    # THEN the good events reached the queue and the bad row is parked with the decode error
    bodies = await drain_queue(sqs, topology.queue_url(settings.feed_queue), expect=2)
    assert sorted(orjson.loads(b)["eventId"] for b in bodies) == sorted(
        str(e.event_id) for e in good
    )
    bad = await db.fetchrow(
        "SELECT parked_at, refusals, last_error FROM outbox WHERE aggregate_key = 'k'"
    )
    assert bad["parked_at"] is not None and bad["refusals"] == 2
    assert bad["last_error"]


class TooLongSns:
    """PublishBatch as SNS answers it when one entry is oversized, plus a throttled entry."""

    def __init__(self, big: str, throttled: str) -> None:
        self.big, self.throttled = big, throttled

    async def publish_batch(self, **request: Any) -> dict[str, Any]:
        entries = request["PublishBatchRequestEntries"]
        if any(self.big in e["Message"] for e in entries):
            code = "BatchRequestTooLong" if len(entries) > 1 else "InvalidParameter"
            raise ClientError({"Error": {"Code": code, "Message": "too long"}}, "PublishBatch")
        failed = [
            {"Id": e["Id"], "Code": "InternalError", "SenderFault": False}
            for e in entries
            if self.throttled in e["Message"]
        ]
        return {"Successful": [], "Failed": failed}


async def test_sns_publisher_isolates_an_oversized_row_from_its_batch(db: asyncpg.Pool) -> None:
    # GIVEN five rows in one PublishBatch: one SNS finds too long, one hit by a server error
    events = await enqueue_events(db, 5)
    async with db.acquire() as conn, conn.transaction():
        rows = await outbox.claim(conn, 10)
    big, throttled = str(events[1].event_id), str(events[3].event_id)
    # WHEN the SNS publisher publishes them
    sns: Any = TooLongSns(big, throttled)
    result = await SnsPublisher(sns, "arn:topic").publish(rows)
    by_event = {str(r.event_id): r.id for r in rows}
    # THEN only the big row is refused (with the reason), the throttled one is merely unsent
    assert list(result.refused) == [by_event[big]]
    assert result.refused[by_event[big]].startswith("InvalidParameter")
    assert result.unsent == {by_event[throttled]}
