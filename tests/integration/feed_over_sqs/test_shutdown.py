"""Stopping the feed worker in the middle of a large fan-out."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from config.feed import FeedRedis
from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology
from contracts.keys import fanout_marker_key
from tests.integration.feed_over_sqs.helpers import FEED, eventually, feed_worker, feeds_holding
from tests.integration.pipelines.feed.helpers import add_users, connect, create_post, post_id
from tests.settings import SettingsFactory

CONNECTIONS = 12_000
GRACE = 0.05


async def test_stop_cuts_a_long_fan_out_short_after_the_grace_and_returns_the_message(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    topo: Topology,
    settings: Settings,
    stack: AsyncExitStack,
    settings_factory: SettingsFactory,
    feed_redis_url: str,
) -> None:
    # GIVEN a worker fanning a post out to 12,000 feeds two at a time
    author, *others = await add_users(db, CONNECTIONS + 1)
    await connect(db, author, others)
    event = await create_post(db, author)
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
    cfg = settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url,
        redis_url=feed_redis_url,
        pollers=1,
        fanout_batch_size=2,
        fanout_parallelism=1,
        shutdown_grace_seconds=GRACE,
    )
    consumer, _ = await feed_worker(stack, sqs, cfg, topo)
    task = asyncio.create_task(consumer.run())

    async def started() -> bool:
        return bool(await feed_redis.hlen(fanout_marker_key(post_id(event))))

    await eventually(started, what="fan-out under way")
    # WHEN it is asked to stop
    loop = asyncio.get_running_loop()
    asked = loop.time()
    consumer.request_stop()
    await asyncio.wait_for(task, 10)
    took = loop.time() - asked
    # THEN it stops soon after the grace instead of finishing the fan-out first,
    # having served some feeds, each at most once, and the message is back in the queue
    assert took < GRACE + 0.5, f"stopping took {took:.2f} s"
    held = await feeds_holding(feed_redis, others, post_id(event))
    assert 0 < sum(held.values()) < CONNECTIONS
    assert max(held.values()) == 1
    got = await sqs.get_queue_attributes(
        QueueUrl=topo.queue_url(FEED), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert got["Attributes"]["ApproximateNumberOfMessages"] == "1"
