"""Read models built the way the live workers build them, for reconciliation tests.

A seeded social graph with posts, fanned out by the real feed handler in an
order other than creation (as a queue delivers them), and the people indexed
by the search pipeline's own stage, then re-indexed after edits that changed
nothing searchable (the profile version advances, the document is skipped).
"""

from __future__ import annotations

import random
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from config.feed import FeedRedis
from contracts.outcomes import ACK
from loadtest.graph import GraphShape, build_graph, seed_graph
from pipelines.search.handler import index_users, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.feed_store import RedisFeedRewriter
from reconcile.feeds import FeedReconcileOptions, FeedReconciler
from store.profiles import profile_ids_after
from tests.factories import post_created
from tests.integration.pipelines.feed.helpers import build, feed

USERS = 2000
POSTS = 150
BASE = datetime(2026, 11, 1, tzinfo=UTC)

Post = tuple[uuid.UUID, uuid.UUID, datetime]


@dataclass(frozen=True)
class World:
    users: list[uuid.UUID]
    posts: list[Post]
    processed: list[Post]


def shuffled_in_blocks(posts: list[Post], block: int, seed: int) -> list[Post]:
    """Creation order disturbed the way a queue disturbs it: within a few places."""
    rng = random.Random(seed)
    out: list[Post] = []
    for start in range(0, len(posts), block):
        chunk = posts[start : start + block]
        rng.shuffle(chunk)
        out += chunk
    return out


async def seed_world(db: asyncpg.Pool) -> tuple[list[uuid.UUID], list[Post]]:
    """A 2,000-user graph with profiles, and 150 posts one second apart."""
    graph = build_graph(USERS, seed=11, shape=GraphShape(hubs=2, hub_share=0.2))
    await seed_graph(db, graph)
    authors = [graph.users[(i * 7919) % USERS] for i in range(POSTS)]
    posts = [(uuid.uuid4(), a, BASE + timedelta(seconds=i)) for i, a in enumerate(authors)]
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "posts", records=posts, columns=["id", "author_id", "created_at"]
        )
    return list(graph.users), posts


async def fan_out(
    client: FeedRedis,
    stack: AsyncExitStack,
    posts: list[Post],
    *,
    max_length: int,
) -> None:
    """Deliver one PostCreated per post, in the given order, to the real feed handler."""
    handler = await build(stack, client, feed_max_length=max_length)
    for post, author, at in posts:
        event = post_created(author_id=author, post_id=post, occurred_at=at)
        assert await handler.handle([event]) == [ACK]


async def pipeline_feeds(
    db: asyncpg.Pool,
    client: FeedRedis,
    stack: AsyncExitStack,
    *,
    max_length: int,
    block: int = 1,
) -> World:
    """The graph's feeds as the feed worker builds them (`block` > 1: out of order)."""
    users, posts = await seed_world(db)
    processed = shuffled_in_blocks(list(posts), block, seed=3) if block > 1 else posts
    await fan_out(client, stack, processed, max_length=max_length)
    return World(users, posts, processed)


async def index_with_unchanged_edits(db: asyncpg.Pool, every: int = 7) -> list[uuid.UUID]:
    """Index every profile, then edit every `every`-th without changing its content and
    re-index them: the version advances, the live upsert skips the unchanged document."""
    ids = await profile_ids_after(db, None, USERS)
    index = PostgresSearchIndex(db)
    await index_users(pool_loader(db), index, ids)
    touched = ids[::every]
    await db.execute(
        "UPDATE user_profiles SET full_name = full_name WHERE user_id = ANY($1)", touched
    )
    result = await index_users(pool_loader(db), index, touched)
    assert result.report.unchanged == len(touched) and result.report.written == 0
    return touched


async def all_feeds(client: FeedRedis, users: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    return {u: got for u in users if (got := await feed(client, u))}


def feed_reconciler(
    db: asyncpg.Pool, client: FeedRedis, max_length: int, **options: object
) -> FeedReconciler:
    opts = FeedReconcileOptions(max_length=max_length, batch_size=300, **options)  # type: ignore[arg-type]
    return FeedReconciler(db, RedisFeedRewriter(client, max_length=max_length), opts)
