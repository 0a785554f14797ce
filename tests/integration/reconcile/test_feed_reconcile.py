"""`reconcile feeds` against feeds the real feed handler produced (PostgreSQL + Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from contracts.keys import feed_key
from contracts.outcomes import ACK
from loadtest.graph import GraphShape, build_graph, seed_graph
from reconcile.feed_store import RedisFeedRewriter
from reconcile.feeds import FeedReconcileOptions, FeedReconciler
from tests.integration.pipelines.feed.helpers import build, feed, post_created

USERS = 2000
POSTS = 150
BASE = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def pipeline_feeds(
    db: asyncpg.Pool, client: redis_asyncio.Redis, stack: AsyncExitStack, max_length: int
) -> list[uuid.UUID]:
    """A 2,000-user graph, 150 posts fanned out by the real handler in creation order."""
    graph = build_graph(USERS, seed=11, shape=GraphShape(hubs=2, hub_share=0.2))
    await seed_graph(db, graph)
    authors = [graph.users[(i * 7919) % USERS] for i in range(POSTS)]
    posts = [(uuid.uuid4(), a, BASE + timedelta(seconds=i)) for i, a in enumerate(authors)]
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "posts", records=posts, columns=["id", "author_id", "created_at"]
        )
    handler = await build(stack, client, feed_max_length=max_length)
    for post, author, at in posts:
        assert await handler.handle([post_created(author, post, at)]) == [ACK]
    return list(graph.users)


async def all_feeds(
    client: redis_asyncio.Redis, users: list[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    return {u: got for u in users if (got := await feed(client, u))}


def reconciler(
    db: asyncpg.Pool, client: redis_asyncio.Redis, max_length: int, **options: object
) -> FeedReconciler:
    opts = FeedReconcileOptions(max_length=max_length, batch_size=300, **options)  # type: ignore[arg-type]
    return FeedReconciler(db, RedisFeedRewriter(client, max_length=max_length), opts)


async def test_rebuild_after_redis_loss_restores_the_pipeline_feeds_in_order(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    # GIVEN feeds the pipeline produced, trimmed to 5 entries
    users = await pipeline_feeds(db, redis_client, stack, max_length=5)
    produced = await all_feeds(redis_client, users)
    assert len(produced) > 100 and max(len(f) for f in produced.values()) == 5
    # WHEN Redis loses everything and the feeds are rebuilt
    await redis_client.flushdb()
    report = await reconciler(db, redis_client, 5, rebuild=True).run()
    # THEN every feed is back, the same entries in the same order
    assert await all_feeds(redis_client, users) == produced
    assert report.checked == USERS
    assert report.missing == sum(len(f) for f in produced.values()) == report.repaired
    # AND a second run finds nothing to do
    again = await reconciler(db, redis_client, 5).run()
    assert (again.drift, again.repaired) == (0, 0)


async def test_repair_counts_each_drift_exactly_and_dry_run_changes_nothing(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    # GIVEN untrimmed pipeline feeds
    users = await pipeline_feeds(db, redis_client, stack, max_length=800)
    produced = await all_feeds(redis_client, users)
    owners = sorted(produced, key=lambda u: (-len(produced[u]), u))
    # AND drift: 40 feeds lost their newest entry, one feed is out of order,
    # one holds garbage, a post was deleted, a connection was removed
    for user in owners[10:50]:
        await redis_client.lpop(feed_key(user))
    swapped = owners[60]
    first, second = produced[swapped][:2]
    await redis_client.lset(feed_key(swapped), 0, second)
    await redis_client.lset(feed_key(swapped), 1, first)
    await redis_client.lpush(feed_key(owners[61]), "not-a-post")
    deleted_post = produced[owners[0]][-1]
    holders = sum(1 for f in produced.values() if deleted_post in f)
    await db.execute("DELETE FROM posts WHERE id = $1", uuid.UUID(deleted_post))
    cut = await db.fetchrow(
        "SELECT c.id, c.requester_id, c.addressee_id FROM connections c"
        " WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = c.requester_id)"
        " ORDER BY c.id LIMIT 1"
    )
    assert cut is not None
    reader = cut["addressee_id"]
    lost = await db.fetchval(
        "SELECT count(*) FROM posts WHERE author_id = $1 AND id <> $2",
        cut["requester_id"],
        uuid.UUID(deleted_post),
    )
    lost_back = await db.fetchval(
        "SELECT count(*) FROM posts WHERE author_id = $1 AND id <> $2",
        reader,
        uuid.UUID(deleted_post),
    )
    await db.execute("UPDATE connections SET status = 'declined' WHERE id = $1", cut["id"])
    before = await all_feeds(redis_client, users)
    # WHEN a dry run checks every feed
    dry = await reconciler(db, redis_client, 800, dry_run=True).run()
    # THEN each drift is counted exactly and nothing changed
    assert dry.missing == 40 and dry.stale == 1
    assert dry.orphaned == holders + 1 + lost + lost_back
    assert dry.repaired == 0 and await all_feeds(redis_client, users) == before
    # WHEN it repairs
    fixed = await reconciler(db, redis_client, 800).run()
    # THEN the same drift is repaired and a second run finds none
    assert (fixed.missing, fixed.stale, fixed.orphaned) == (dry.missing, dry.stale, dry.orphaned)
    assert fixed.repaired == fixed.drift and fixed.consistent
    again = await reconciler(db, redis_client, 800).run()
    assert again.drift == 0
    # AND the repaired feeds are the pipeline's minus the deleted post and the cut connection
    assert await feed(redis_client, swapped) == [p for p in produced[swapped] if p != deleted_post]
    remaining = await all_feeds(redis_client, users)
    assert all(deleted_post not in f for f in remaining.values())


async def test_user_id_option_limits_the_run_to_those_feeds(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    users = await pipeline_feeds(db, redis_client, stack, max_length=50)
    produced = await all_feeds(redis_client, users)
    chosen, other = list(produced)[:2]
    await redis_client.delete(feed_key(chosen), feed_key(other))
    report = await reconciler(db, redis_client, 50, user_ids=(chosen,)).run()
    assert report.checked == 1 and report.missing == len(produced[chosen])
    assert await feed(redis_client, chosen) == produced[chosen]
    assert await feed(redis_client, other) == []


async def test_rewrite_keeps_a_post_pushed_after_the_snapshot(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a feed snapshot, then a fan-out pushing a new post before the rewrite lands
    user, old, new, missing = (str(uuid.uuid4()) for _ in range(4))
    rewriter = RedisFeedRewriter(redis_client, max_length=3)
    await redis_client.rpush(feed_key(user), old)
    [snapshot] = await rewriter.snapshot([uuid.UUID(user)])
    await redis_client.lpush(feed_key(user), new)
    # WHEN the feed is rewritten from the snapshot's plan
    changed = await rewriter.rewrite(uuid.UUID(user), snapshot, [missing, old])
    # THEN the concurrent post stays at the head, then the plan, trimmed
    assert changed
    assert await feed(redis_client, uuid.UUID(user)) == [new, missing, old]
    assert not await rewriter.rewrite(uuid.UUID(user), [new, missing, old], [new, missing, old])
