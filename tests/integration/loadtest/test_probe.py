"""The feed probe against real Redis."""

from __future__ import annotations

import time
import uuid

import redis.asyncio as redis_asyncio

from config.clients import AnyRedis
from contracts.keys import fanout_marker_key, feed_key
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
    # THEN it is still pending, and still is once its (one) batch is marked done
    assert probe.latencies == []
    await redis_client.hset(fanout_marker_key(post), "batch-digest", "1")
    await probe.poll_once()
    assert probe.latencies == []
    # WHEN the last sorted target's feed gets it too
    await redis_client.lpush(feed_key(targets[-1]), str(post))
    await probe.poll_once()
    # THEN one latency of at least the second is recorded and nothing is pending
    assert len(probe.latencies) == 1
    assert probe.latencies[0] >= 1.0
    assert probe.pending == {}


async def test_feeds_are_not_searched_before_the_fan_out_marker_says_done(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a post watched in one feed that already holds it, but no marker yet
    post, target = uuid.uuid4(), uuid.uuid4()
    probe = FeedProbe(redis_client)
    probe.watch(post, time.time(), [target])
    await redis_client.lpush(feed_key(target), str(post))
    # WHEN polled
    await probe.poll_once()
    # THEN it waits for the marker (no LPOS ran), and counts once the batch is marked
    assert probe.latencies == []
    await redis_client.hset(fanout_marker_key(post), mapping={"owner": "x", "digest": "1"})
    await probe.poll_once()
    assert len(probe.latencies) == 1


async def test_drain_reports_posts_that_never_arrive(redis_client: redis_asyncio.Redis) -> None:
    probe = FeedProbe(redis_client)
    probe.watch(uuid.uuid4(), time.time(), [uuid.uuid4()])
    probe.watch(uuid.uuid4(), time.time(), [])
    assert probe.watched == 1
    assert await probe.drain(0.1) == 1


# --- trimmed before seen -------------------------------------------------------------------

MAX_LENGTH = 5


async def fill_feed(redis: AnyRedis, user: uuid.UUID, posts: int) -> None:
    """A feed holding `posts` other posts, as fan-out leaves it (newest at the head)."""
    await redis.lpush(feed_key(user), *(str(uuid.uuid4()) for _ in range(posts)))


async def fan_out_done(redis: AnyRedis, post: uuid.UUID, batches: int) -> None:
    """The fan-out marker as the Lua script leaves it once `batches` batches are done."""
    digests = [x for i in range(batches) for x in (f"digest-{i}", "1")]
    await redis.hset(fanout_marker_key(post), items=["owner", "worker-1", *digests])


async def watch_fanned_out_post(
    probe: FeedProbe, other_posts: int, *, oldest_is_the_post: bool = False
) -> None:
    """A post fanned out in one batch to one target, whose feed holds `other_posts` others."""
    post, target = uuid.uuid4(), uuid.uuid4()
    await fan_out_done(probe.redis, post, batches=1)
    if oldest_is_the_post:
        await probe.redis.lpush(feed_key(target), str(post))
    await fill_feed(probe.redis, target, other_posts)
    probe.watch(post, time.time() - 1.0, [target])


def trim_probe(redis: redis_asyncio.Redis) -> FeedProbe:
    return FeedProbe(redis, batch_size=2, feed_max_length=MAX_LENGTH)


async def test_post_fanned_out_but_missing_from_a_full_feed_was_trimmed_before_seen(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a post whose fan-out finished, absent from its target's full feed
    probe = trim_probe(redis_client)
    await watch_fanned_out_post(probe, MAX_LENGTH)
    # WHEN the probe drains
    missed = await probe.drain(5.0)
    # THEN it is counted trimmed before seen, neither missed nor measured
    assert (missed, probe.trimmed, probe.latencies) == (0, 1, [])
    assert probe.pending == {}


async def test_post_missing_from_a_feed_that_is_not_full_was_never_visible(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a post whose fan-out finished, absent from a feed one short of full
    probe = trim_probe(redis_client)
    await watch_fanned_out_post(probe, MAX_LENGTH - 1)
    # WHEN the probe drains
    missed = await probe.drain(0.2)
    # THEN nothing trimmed it: it was never visible
    assert (missed, probe.trimmed) == (1, 0)


async def test_post_present_in_a_full_feed_is_seen_not_trimmed(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a full feed whose oldest kept entry is the post, watched from a second ago
    probe = trim_probe(redis_client)
    await watch_fanned_out_post(probe, MAX_LENGTH - 1, oldest_is_the_post=True)
    # WHEN the probe drains
    missed = await probe.drain(5.0)
    # THEN it is seen, with its latency
    assert (missed, probe.trimmed, len(probe.latencies)) == (0, 0, 1)
    assert probe.latencies[0] >= 1.0


async def test_full_feed_does_not_excuse_a_post_whose_fan_out_is_unfinished(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN three targets cut into two batches of two, and only one batch done
    post = uuid.uuid4()
    targets = [uuid.uuid4() for _ in range(3)]
    await fan_out_done(redis_client, post, batches=1)
    for target in targets:
        await fill_feed(redis_client, target, MAX_LENGTH)
    probe = trim_probe(redis_client)
    probe.watch(post, time.time(), targets)
    # WHEN the probe drains
    missed = await probe.drain(0.2)
    # THEN full feeds alone prove nothing: it was never visible
    assert (missed, probe.trimmed) == (1, 0)
    # WHEN the second batch is done too
    await fan_out_done(redis_client, post, batches=2)
    # THEN the post counts as trimmed before seen
    assert await probe.drain(5.0) == 0
    assert probe.trimmed == 1


async def test_without_the_feed_cap_no_post_counts_as_trimmed(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a post trimmed from a full feed, watched by a probe not told FEED_MAX_LENGTH
    probe = FeedProbe(redis_client)
    await watch_fanned_out_post(probe, MAX_LENGTH)
    # THEN it cannot be excused: it was never visible
    assert await probe.drain(0.2) == 1
    assert probe.trimmed == 0
