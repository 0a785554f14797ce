"""`reconcile feeds` against feeds the real feed handler produced (PostgreSQL + Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import asyncpg
import pytest

from config.feed import FeedRedis
from contracts.keys import feed_key
from reconcile.feed_store import RedisFeedRewriter
from tests.integration.pipelines.feed.helpers import add_users, feed
from tests.integration.reconcile.pipeline_state import (
    USERS,
    World,
    all_feeds,
    feed_reconciler,
    pipeline_feeds,
)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


def out_of_creation_order(world: World, feeds: dict[uuid.UUID, list[str]]) -> int:
    created = {str(p): at for p, _, at in world.posts}
    return sum(1 for f in feeds.values() if f != sorted(f, key=created.__getitem__, reverse=True))


@pytest.mark.parametrize("max_length", [5, 800])
async def test_feeds_fanned_out_out_of_order_report_no_drift(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack, max_length: int
) -> None:
    # GIVEN feeds the pipeline produced from posts processed out of creation order
    world = await pipeline_feeds(db, feed_redis, stack, max_length=max_length, block=5)
    produced = await all_feeds(feed_redis, world.users)
    assert world.processed != world.posts and out_of_creation_order(world, produced) >= 10
    if max_length == 5:
        assert sum(len(f) == 5 for f in produced.values()) >= 20  # many feeds are full
        # AND out-of-order trims made some full feeds trade expected posts for older ones
        strict = feed_reconciler(db, feed_redis, 5, dry_run=True, push_skew=timedelta(0))
        assert (await strict.run()).missing > 0
    # WHEN a dry run checks every feed
    report = await feed_reconciler(db, feed_redis, max_length, dry_run=True).run()
    # THEN it finds no drift of any kind
    assert report.checked == USERS
    counts = (report.missing, report.extra, report.duplicate, report.phantom)
    assert counts == (0, 0, 0, 0) and report.consistent


async def test_each_drift_kind_is_reported_under_its_name_and_repaired(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN untrimmed pipeline feeds, processed out of order
    world = await pipeline_feeds(db, feed_redis, stack, max_length=800, block=5)
    produced = await all_feeds(feed_redis, world.users)
    owners = sorted(produced, key=lambda u: (-len(produced[u]), u))
    # AND drift: 30 feeds lost an entry, 20 hold one twice, 10 hold an unknown id and
    # 1 garbage, 5 hold a post of someone their owner is not connected to
    for user in owners[0:30]:
        await feed_redis.lrem(feed_key(user), 1, produced[user][1])
    for user in owners[30:50]:
        await feed_redis.rpush(feed_key(user), produced[user][0])
    for user in owners[50:60]:
        await feed_redis.lpush(feed_key(user), str(uuid.uuid4()))
    await feed_redis.lpush(feed_key(owners[60]), "not-a-post")
    [stranger] = await add_users(db, 1)
    foreign = await db.fetchval("INSERT INTO posts (author_id) VALUES ($1) RETURNING id", stranger)
    for user in owners[61:66]:
        await feed_redis.lpush(feed_key(user), str(foreign))
    before = await all_feeds(feed_redis, world.users)
    # WHEN a dry run checks every feed
    dry = await feed_reconciler(db, feed_redis, 800, dry_run=True).run()
    # THEN each kind is counted under its own name, and nothing changed
    assert (dry.missing, dry.duplicate, dry.phantom, dry.extra) == (30, 20, 11, 5)
    assert dry.repaired == 0 and await all_feeds(feed_redis, world.users) == before
    # WHEN it repairs
    fixed = await feed_reconciler(db, feed_redis, 800).run()
    # THEN the same drift is repaired, and a second run finds none
    assert (fixed.missing, fixed.duplicate, fixed.phantom, fixed.extra) == (30, 20, 11, 5)
    assert fixed.repaired == fixed.drift == 66 and fixed.consistent
    again = await feed_reconciler(db, feed_redis, 800).run()
    assert (again.drift, again.repaired) == (0, 0)
    # AND every repaired feed holds the pipeline's posts once each, nothing else
    for user in owners[0:66]:
        got = await feed(feed_redis, user)
        assert len(got) == len(set(got)) and set(got) == set(produced[user])


async def test_a_deleted_post_is_phantom_and_a_removed_connection_leaves_extra_entries(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN pipeline feeds, then a post deleted and a connection declined
    world = await pipeline_feeds(db, feed_redis, stack, max_length=800)
    produced = await all_feeds(feed_redis, world.users)
    deleted = str(world.posts[-1][0])
    holders = sum(1 for f in produced.values() if deleted in f)
    await db.execute("DELETE FROM posts WHERE id = $1", uuid.UUID(deleted))
    cut = await db.fetchrow(
        "SELECT c.id, c.requester_id, c.addressee_id FROM connections c"
        " WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = c.requester_id)"
        " ORDER BY c.id LIMIT 1"
    )
    assert cut is not None
    await db.execute("UPDATE connections SET status = 'declined' WHERE id = $1", cut["id"])
    # One side's feed held the other's posts: those entries are now extra.
    lost = await db.fetchval(
        "SELECT count(*) FROM posts WHERE author_id = ANY($1)",
        [cut["requester_id"], cut["addressee_id"]],
    )
    # WHEN reconciliation repairs
    fixed = await feed_reconciler(db, feed_redis, 800).run()
    # THEN the deleted post counts as phantom in every feed that held it
    assert (fixed.phantom, fixed.extra, fixed.missing) == (holders, lost, 0)
    remaining = await all_feeds(feed_redis, world.users)
    assert all(deleted not in f for f in remaining.values())
    assert (await feed_reconciler(db, feed_redis, 800).run()).drift == 0


async def test_rebuild_after_redis_loss_restores_the_pipeline_feeds_in_order(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    # GIVEN feeds the pipeline produced in creation order, trimmed to 5 entries
    world = await pipeline_feeds(db, feed_redis, stack, max_length=5)
    produced = await all_feeds(feed_redis, world.users)
    assert len(produced) > 100 and max(len(f) for f in produced.values()) == 5
    # WHEN Redis loses everything and the feeds are rebuilt
    await feed_redis.flushdb()
    report = await feed_reconciler(db, feed_redis, 5, rebuild=True).run()
    # THEN every feed is back, the same entries in the same order
    assert await all_feeds(feed_redis, world.users) == produced
    assert report.checked == USERS
    assert report.missing == sum(len(f) for f in produced.values()) == report.repaired
    # AND a second run finds nothing to do
    again = await feed_reconciler(db, feed_redis, 5).run()
    assert (again.drift, again.repaired) == (0, 0)


async def test_user_id_option_limits_the_run_to_those_feeds(
    db: asyncpg.Pool, feed_redis: FeedRedis, stack: AsyncExitStack
) -> None:
    world = await pipeline_feeds(db, feed_redis, stack, max_length=50)
    produced = await all_feeds(feed_redis, world.users)
    chosen, other = list(produced)[:2]
    await feed_redis.delete(feed_key(chosen), feed_key(other))
    report = await feed_reconciler(db, feed_redis, 50, user_ids=(chosen,)).run()
    assert report.checked == 1 and report.missing == len(produced[chosen])
    assert await feed(feed_redis, chosen) == produced[chosen]
    assert await feed(feed_redis, other) == []


async def test_rewrite_keeps_a_post_pushed_after_the_snapshot_once(
    feed_redis: FeedRedis,
) -> None:
    # GIVEN a feed snapshot, then a fan-out pushing a new post before the rewrite lands
    user, old, new, missing = (str(uuid.uuid4()) for _ in range(4))
    rewriter = RedisFeedRewriter(feed_redis, max_length=3)
    await feed_redis.rpush(feed_key(user), old, old)
    [snapshot] = await rewriter.snapshot([uuid.UUID(user)])
    await feed_redis.lpush(feed_key(user), new)
    # WHEN the feed is rewritten from the snapshot's plan
    changed = await rewriter.rewrite(uuid.UUID(user), snapshot, [missing, old])
    # THEN the concurrent post stays at the head, then the plan, each once, trimmed
    assert changed
    assert await feed(feed_redis, uuid.UUID(user)) == [new, missing, old]
    assert not await rewriter.rewrite(uuid.UUID(user), [new, missing, old], [new, missing, old])
