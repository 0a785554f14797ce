"""bench.worker_cpu's Redis floor: the posts' fan-outs again as bare LPUSHes."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis_asyncio

from bench.worker_cpu import post_events, redis_floor
from contracts.events import PostCreated
from contracts.keys import feed_key
from loadtest.graph import build_graph, seed_graph


async def test_the_floor_pushes_each_post_once_to_each_connection_of_its_author(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a seeded graph and posts by some of its users
    graph = build_graph(60, seed=3)
    await seed_graph(db, graph)
    envelopes = await post_events(db, graph.users, 8)
    posts = [e.payload for e in envelopes if isinstance(e.payload, PostCreated)]

    # WHEN the floor is measured
    cpu, pushes = await redis_floor(db, redis_client, graph.users, envelopes)

    # THEN every connection of each author got the post once, and nothing else was pushed
    assert pushes == sum(len(graph.targets(p.author_id)) for p in posts) > 0
    assert cpu >= 0
    for post in posts:
        for friend in graph.targets(post.author_id):
            feed = await redis_client.lrange(feed_key(friend), 0, -1)
            assert feed.count(str(post.post_id).encode()) == 1
    total = sum([await redis_client.llen(feed_key(u)) for u in graph.users])
    assert total == pushes
