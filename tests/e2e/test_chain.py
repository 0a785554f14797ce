"""The whole chain in one process: API → outbox → relay → SNS → SQS → workers → read models."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher

from config.api import build_api
from config.relay import build_relay
from config.settings import Settings
from config.worker import run_worker
from consumers.topology import ensure_topology
from contracts.keys import feed_key
from pipelines.relay.relay import RelayOptions
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import SECRET, Api


async def deliver(settings: Settings) -> None:
    """Publish the outbox, then drain every pipeline's queue."""
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=RelayOptions(poll_interval=0.2))
        await relay.run(asyncio.Event(), burst=True)
    for pipeline in ("feed", "search", "notifications"):
        assert await run_worker(settings, pipeline, burst=True, concurrency=4) == 0


async def test_post_profile_edit_and_comment_reach_every_read_model(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, settings: Settings, sqs: Any, sns: Any
) -> None:
    await ensure_topology(sqs, sns, settings)
    cfg = settings.model_copy(update={"api_token_secret": SECRET})
    async with AsyncExitStack() as stack:
        app = await build_api(
            stack,
            cfg,
            pool=db,
            redis=redis_client,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            api = Api(client)
            # GIVEN three users, A and B connected, C a stranger
            a, _ = await api.register("a@chain.example", "Alice A")
            b, b_id = await api.register("b@chain.example", "Bob B")
            c, c_id = await api.register("c@chain.example", "Carol C")
            await api.connect(a, b, b_id)
            # WHEN B posts and edits the profile, and A comments on the post
            started = time.monotonic()
            post = await api.ok('mutation { createPost(textContent: "shipping!") { id } }', token=b)
            post_id = post["createPost"]["id"]
            await api.ok('mutation { addSkill(skillName: "Kubernetes") { id } }', token=b)
            await api.ok(
                'mutation { updateProfile(input: {headline: "Platform lead"}) { headline } }',
                token=b,
            )
            await api.ok(
                'mutation($p: ID!) { createComment(postId: $p, textContent: "nice") { id } }',
                {"p": post_id},
                token=a,
            )
            await deliver(cfg)
            elapsed = time.monotonic() - started
            # THEN the post is in A's feed and not in C's
            feed_a = await api.ok("{ feed { items { id author { userId } } } }", token=a)
            feed_c = await api.ok("{ feed { items { id } } }", token=c)
            assert [i["id"] for i in feed_a["feed"]["items"]] == [post_id]
            assert feed_c["feed"]["items"] == []
            assert await redis_client.llen(feed_key(c_id)) == 0
            # AND C finds B by the new skill, with the new headline
            hits = await api.ok(
                '{ searchUsers(query: "", skills: ["Kubernetes"]) { userId headline } }', token=c
            )
            assert hits["searchUsers"] == [{"userId": b_id, "headline": "Platform lead"}]
            # AND B is told about A's comment (and earlier about the request), A about the accept
            b_notes = await api.ok(
                "{ notifications { kind actorId } unreadNotifications }", token=b
            )
            kinds = sorted(n["kind"] for n in b_notes["notifications"])
            assert kinds == ["comment_created", "connection_requested"]
            assert b_notes["unreadNotifications"] == 2
            a_notes = await api.ok("{ notifications { kind actorId } }", token=a)
            assert a_notes["notifications"] == [{"kind": "connection_accepted", "actorId": b_id}]
            # Burst runs include each worker's idle receive before it exits, so this
            # bounds the chain's drain time, not its streaming latency.
            assert elapsed < 20
