"""The feed stores' promises, on one Redis node and on a Redis Cluster alike.

Every test runs twice (`feed_redis`): on the test database of one node with
`RedisFeedStore`, and on the session's 3-master cluster with `ClusterFeedStore`.
Redelivery, concurrent owners of a batch, careful pushes, the cap and a feed that
fails alone must behave the same on both.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from redis.asyncio.cluster import RedisCluster

from config.feed import FeedRedis
from contracts.keys import feed_key
from pipelines.feed.cluster_feeds import ClusterFeedStore, slot_ordered
from pipelines.feed.ports import FeedStore
from pipelines.feed.redis_cache import RedisConnectionCache, slots_cache_key
from pipelines.feed.redis_feeds import RedisFeedStore
from transforms.fanout import PackedIds


def _store(client: FeedRedis, max_length: int = 800) -> FeedStore:
    """The store `socialpipe worker feed` builds for this client (one node or a cluster)."""
    if isinstance(client, RedisCluster):
        return ClusterFeedStore(client, max_length=max_length, marker_ttl=3600, first_pause=0.02)
    return RedisFeedStore(client, max_length=max_length, marker_ttl=3600)


def _users(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


async def _occurrences(client: FeedRedis, users: Sequence[uuid.UUID], post: uuid.UUID) -> set[int]:
    """How many times `post` is in each user's feed (the set of distinct counts)."""
    async with client.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.lrange(feed_key(user), 0, -1)
        feeds = await pipe.execute()
    return {feed.count(str(post).encode()) for feed in feeds}


async def test_a_fan_out_lands_once_in_each_of_3000_feeds(feed_redis: FeedRedis) -> None:
    store, users, post = _store(feed_redis), _users(3000), uuid.uuid4()

    result = await store.push_batch(post, users, digest="d1", owner="a", careful=False)

    assert (result.written, result.skipped, result.failed) == (3000, 0, ())
    assert await _occurrences(feed_redis, users, post) == {1}
    again = await store.push_batch(post, users, digest="d1", owner="b", careful=False)
    assert again.already_done


async def test_a_second_owner_and_careful_pushes_never_duplicate(
    feed_redis: FeedRedis,
) -> None:
    store, users, post = _store(feed_redis), _users(500), uuid.uuid4()
    first, rest = users[:200], users
    await store.push_batch(post, first, digest="half", owner="a", careful=False)

    second = await store.push_batch(post, rest, digest="all", owner="b", careful=False)
    careful = await store.push_batch(post, rest, digest="again", owner="b", careful=True)

    assert (second.written, second.skipped) == (300, 200)
    assert (careful.written, careful.skipped) == (0, 500)
    assert await _occurrences(feed_redis, users, post) == {1}


async def test_concurrent_owners_of_one_batch_never_duplicate(
    feed_redis: FeedRedis,
) -> None:
    store, users, post = _store(feed_redis), _users(2000), uuid.uuid4()

    a, b = await asyncio.gather(
        store.push_batch(post, users, digest="d", owner="a", careful=False),
        store.push_batch(post, users, digest="d", owner="b", careful=False),
    )

    assert a.written + b.written + a.skipped + b.skipped in (2000, 4000)
    assert await _occurrences(feed_redis, users, post) == {1}


async def test_the_cap_holds_on_full_feeds(feed_redis: FeedRedis) -> None:
    store, users = _store(feed_redis, max_length=5), _users(50)
    posts = [uuid.uuid4() for _ in range(8)]

    for n, post in enumerate(posts):
        await store.push_batch(post, users, digest=f"d{n}", owner="a", careful=n % 2 == 1)

    for user in users[:10]:
        assert await store.head(user, 10) == posts[::-1][:5]


async def test_a_wrong_type_fails_only_its_target_and_the_next_attempt_writes_only_it(
    feed_redis: FeedRedis,
) -> None:
    store, users, post = _store(feed_redis), _users(300), uuid.uuid4()
    broken = users[123]
    await feed_redis.set(feed_key(broken), "not a list")

    first = await store.push_batch(post, users, digest="d", owner="a", careful=False)
    await feed_redis.delete(feed_key(broken))
    second = await store.push_batch(post, users, digest="d", owner="b", careful=False)

    assert (first.written, first.failed) == (299, (broken,))
    assert (second.written, second.skipped, second.failed) == (1, 299, ())
    assert await _occurrences(feed_redis, users, post) == {1}
    assert (await store.push_batch(post, users, digest="d", owner="c", careful=False)).already_done


async def test_the_connection_cache_reads_stores_and_invalidates(feed_redis: FeedRedis) -> None:
    cache = RedisConnectionCache(feed_redis, fresh_ttl=60, stale_ttl=600)
    user, ids = uuid.uuid4(), _users(3)

    seen = await cache.read(user)
    assert await cache.store_if_unchanged(user, ids, seen.generation)
    assert list((await cache.read(user)).connections or []) == ids
    await cache.invalidate(user)
    assert (await cache.read(user)).connections is None
    assert not await cache.store_if_unchanged(user, ids[:1], seen.generation)
    assert list(await cache.read_stale(user) or []) == ids


async def test_the_slot_ordered_cache_keeps_its_order_under_keys_of_its_own(
    feed_redis: FeedRedis,
) -> None:
    # GIVEN a cache that keeps lists in slot order (a cluster's), and a plain one
    by_slot = RedisConnectionCache(feed_redis, fresh_ttl=60, stale_ttl=600, by_slot=True)
    plain = RedisConnectionCache(feed_redis, fresh_ttl=60, stale_ttl=600)
    user, ids = uuid.uuid4(), _users(50)
    arranged = slot_ordered(ids)

    # WHEN each stores the user's list
    assert await by_slot.store_if_unchanged(user, arranged, (await by_slot.read(user)).generation)
    assert await plain.store_if_unchanged(user, ids, (await plain.read(user)).generation)

    # THEN each reads back its own copy: the slot-ordered one labelled so, for plans
    fresh, stale = (await by_slot.read(user)).connections, await by_slot.read_stale(user)
    for copy in (fresh, stale):
        assert isinstance(copy, PackedIds) and copy.by_slot and copy.packed == arranged.packed
    other = (await plain.read(user)).connections
    assert isinstance(other, PackedIds) and not other.by_slot and list(other) == ids
    # AND a list not in slot order is refused by the slot-ordered cache
    with pytest.raises(ValueError, match="slot order"):
        await by_slot.store_if_unchanged(user, ids, b"")
    # AND one invalidation drops both fresh copies, whichever cache makes it
    await plain.invalidate(user)
    assert (await by_slot.read(user)).connections is None
    assert (await plain.read(user)).connections is None
    assert await feed_redis.exists(slots_cache_key(user)) == 0
