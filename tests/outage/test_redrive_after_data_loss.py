"""Redriving after Redis lost its data never duplicates a feed entry.

The operator's sequence: Redis restarts empty (its fan-out markers gone),
`socialpipe reconcile feeds` rebuilds the feeds from PostgreSQL, then
`socialpipe dlq redrive` sends the dead letters back. A redriven post already
restored by reconcile must not be pushed a second time, whether the dead letter
carries our failure attributes or was moved by the queue's own redrive policy
with none; and a post never fanned out must end up in every feed once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from config.clients import open_sns, open_sqs
from config.worker import build_handler, consumer_options
from consumers.publish import send_raw
from consumers.runtime import SqsConsumer
from consumers.topology import ensure_topology
from contracts.events import Envelope
from contracts.keys import careful_until_key, feed_key
from tests.factories import post_created
from tests.integration.consumers.helpers import depth
from tests.outage.servers import StoppableRedis
from tests.settings import SettingsFactory

FEED = "feed-fanout"


def _socialpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("socialpipe")), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _post(conn: asyncpg.Connection, author: uuid.UUID) -> Envelope:
    post = await conn.fetchval(
        "INSERT INTO posts (author_id, text_content) VALUES ($1, 'x') RETURNING id", author
    )
    return post_created(post_id=post, author_id=author)


@pytest.mark.timeout(180)
async def test_outage_with_data_loss_then_reconcile_then_redrive_leaves_each_post_once(
    aws: str,
    stoppable_redis: StoppableRedis,
    outage_settings: SettingsFactory,
    outage_database_url: str,
) -> None:
    # GIVEN an author with three connections and two posts fanned out by a real worker
    settings = outage_settings(aws_endpoint_url=aws, pollers=1)
    conn = await asyncpg.connect(outage_database_url)
    try:
        author, *friends = [uuid.uuid4() for _ in range(4)]
        await conn.executemany(
            "INSERT INTO users (id, email) VALUES ($1, $2)",
            [(u, f"{u}@example.test") for u in (author, *friends)],
        )
        await conn.executemany(
            "INSERT INTO connections (requester_id, addressee_id, status)"
            " VALUES ($1, $2, 'accepted')",
            [(author, f) for f in friends],
        )
        with_attributes, moved_by_sqs, never_delivered = [
            await _post(conn, author) for _ in range(3)
        ]
    finally:
        await conn.close()
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(stack, settings)
        topo = await ensure_topology(sqs, await open_sns(stack, settings), settings)
        for event in (with_attributes, moved_by_sqs):
            await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
        await _burst(stack, settings, sqs, topo)

        # AND their events sit in the DLQ: one as a worker dead-letters (attributes),
        # one as the queue's redrive policy moves it (none), one never delivered at all
        dead: dict[str, Any] = {
            "errorType": {"DataType": "String", "StringValue": "TransientError"},
            "sourceQueue": {"DataType": "String", "StringValue": FEED},
        }
        await sqs.send_message(
            QueueUrl=topo.dlq_url(FEED),
            MessageBody=with_attributes.to_json().decode(),
            MessageAttributes=dead,
        )
        for event in (moved_by_sqs, never_delivered):
            await sqs.send_message(
                QueueUrl=topo.dlq_url(FEED), MessageBody=event.to_json().decode()
            )

        # WHEN Redis restarts without its data, reconcile rebuilds, and the DLQ is redriven
        await asyncio.to_thread(stoppable_redis.restart, keep_data=False)
        env = {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "AWS_ENDPOINT_URL": aws,
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        rebuilt = _socialpipe(env, "reconcile", "feeds")
        assert rebuilt.returncode == 0, rebuilt.stderr
        # (an hour later: reconcile's careful-until mark has lapsed, so only what
        # each redriven message says can make its fan-out careful)
        async with redis_asyncio.Redis.from_url(settings.redis_url) as client:
            assert await client.delete(careful_until_key()) == 1
        redriven = _socialpipe(env, "dlq", "redrive", "feed")
        assert redriven.returncode == 0, redriven.stderr
        await _burst(stack, settings, sqs, topo)

        # THEN every feed holds each post exactly once, and nothing is left dead-lettered
        redis = redis_asyncio.Redis.from_url(settings.redis_url)
        try:
            expected = sorted(
                str(e.payload.post_id)  # type: ignore[union-attr]
                for e in (with_attributes, moved_by_sqs, never_delivered)
            )
            for friend in friends:
                raw = await redis.lrange(feed_key(friend), 0, -1)
                held = sorted(v.decode() if isinstance(v, bytes) else v for v in raw)
                assert held == expected, f"feed of {friend}: {held}"
        finally:
            await redis.aclose()
        assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def _burst(stack: AsyncExitStack, settings: Any, sqs: Any, topo: Any) -> None:
    handler = await build_handler(stack, settings, "feed")
    consumer = SqsConsumer(
        sqs,
        queue_name=FEED,
        queue_url=topo.queue_url(FEED),
        dlq_url=topo.dlq_url(FEED),
        handler=handler,
        options=consumer_options(settings),
        concurrency=4,
    )
    await asyncio.wait_for(consumer.run(burst=True), 60)
