"""The feed probe against real Redis."""

from __future__ import annotations

import time
import uuid

import redis.asyncio as redis_asyncio

from contracts.keys import feed_key
from loadtest.latency import FeedProbe


async def test_post_counts_once_visible_in_every_watched_feed(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a post to three targets, watched from one second ago
    post = uuid.uuid4()
    targets = sorted(uuid.uuid4() for _ in range(3))
    probe = FeedProbe(redis_client)
    probe.watch(post, time.time() - 1.0, targets)
    # WHEN only the first two feeds have it
    for target in targets[:2]:
        await redis_client.lpush(feed_key(target), str(post))
    await probe.poll_once()
    # THEN it is still pending
    assert probe.latencies == []
    # WHEN the last sorted target's feed gets it too
    await redis_client.lpush(feed_key(targets[-1]), str(post))
    await probe.poll_once()
    # THEN one latency of at least the second is recorded and nothing is pending
    assert len(probe.latencies) == 1
    assert probe.latencies[0] >= 1.0
    assert probe.pending == {}


async def test_drain_reports_posts_that_never_arrive(redis_client: redis_asyncio.Redis) -> None:
    probe = FeedProbe(redis_client)
    probe.watch(uuid.uuid4(), time.time(), [uuid.uuid4()])
    probe.watch(uuid.uuid4(), time.time(), [])
    assert probe.watched == 1
    assert await probe.drain(0.1) == 1
