"""Feed, search and notification acceptance paths, run over SQS and over Kafka.

API → outbox → relay → transport → worker (`--burst`) → read model: the same
scenario and the same handlers, only `EVENT_TRANSPORT` differs.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import redis.asyncio as redis_asyncio

from config.relay import build_relay
from config.settings import Settings
from config.worker import run_worker
from contracts.keys import feed_key
from pipelines.relay.relay import RelayOptions
from tests.integration.api.client import Api


async def deliver(settings: Settings, *pipelines: str) -> None:
    """Publish the outbox, then drain the given pipelines."""
    async with AsyncExitStack() as stack:
        relay = await build_relay(stack, settings, options=RelayOptions(poll_interval=0.2))
        await relay.run(asyncio.Event(), burst=True)
    for pipeline in pipelines:
        assert await run_worker(settings, pipeline, burst=True, concurrency=4) == 0


async def test_post_reaches_connections_feeds_and_nobody_elses(
    transport: Settings, api_over: Api, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN A and B connected, C a stranger
    a, _ = await api_over.register("a@feed.example", "Alice A")
    b, b_id = await api_over.register("b@feed.example", "Bob B")
    _, c_id = await api_over.register("c@feed.example", "Carol C")
    await api_over.connect(a, b, b_id)
    # WHEN B posts and the feed worker drains its share of the bus
    created = await api_over.ok('mutation { createPost(textContent: "hello") { id } }', token=b)
    await deliver(transport, "feed")
    # THEN A's feed holds the post once, and C's feed is empty
    feed_a = await api_over.ok("{ feed { items { id } } }", token=a)
    assert [i["id"] for i in feed_a["feed"]["items"]] == [created["createPost"]["id"]]
    assert await redis_client.llen(feed_key(c_id)) == 0


async def test_profile_update_becomes_searchable(transport: Settings, api_over: Api) -> None:
    # GIVEN B with a new skill and headline, and C searching
    b, b_id = await api_over.register("b@search.example", "Bob B")
    c, _ = await api_over.register("c@search.example", "Carol C")
    await api_over.ok('mutation { addSkill(skillName: "Kubernetes") { id } }', token=b)
    await api_over.ok(
        'mutation { updateProfile(input: {headline: "Platform lead"}) { headline } }', token=b
    )
    # WHEN the search worker drains
    await deliver(transport, "search")
    # THEN C finds B by the skill, with the new headline
    hits = await api_over.ok(
        '{ searchUsers(query: "", skills: ["Kubernetes"]) { userId headline } }', token=c
    )
    assert hits["searchUsers"] == [{"userId": b_id, "headline": "Platform lead"}]


async def test_request_accept_and_comment_notify_the_right_people(
    transport: Settings, api_over: Api
) -> None:
    # GIVEN A connects to B (request, accept) and comments on B's post
    a, _ = await api_over.register("a@notes.example", "Alice A")
    b, b_id = await api_over.register("b@notes.example", "Bob B")
    await api_over.connect(a, b, b_id)
    post = await api_over.ok('mutation { createPost(textContent: "news") { id } }', token=b)
    await api_over.ok(
        'mutation($p: ID!) { createComment(postId: $p, textContent: "nice") { id } }',
        {"p": post["createPost"]["id"]},
        token=a,
    )
    # WHEN the notifications worker drains
    await deliver(transport, "notifications")
    # THEN B is told of the request and the comment, A of the acceptance
    b_notes = await api_over.ok("{ notifications { kind } unreadNotifications }", token=b)
    assert sorted(n["kind"] for n in b_notes["notifications"]) == [
        "comment_created",
        "connection_requested",
    ]
    assert b_notes["unreadNotifications"] == 2
    a_notes = await api_over.ok("{ notifications { kind actorId } }", token=a)
    assert a_notes["notifications"] == [{"kind": "connection_accepted", "actorId": b_id}]
