"""The feed worker over SNS/SQS: who gets a post, duplicates, raw and SNS-enveloped bodies."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from config.feed import FeedRedis
from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology
from contracts.keys import feed_key
from pipelines.relay.sns import publish_events
from tests.factories import sns_notification
from tests.integration.consumers.helpers import depth
from tests.integration.feed_over_sqs.helpers import FEED, feed_worker, feeds_holding, small_graph
from tests.integration.pipelines.feed.helpers import create_post, feed, post_id


async def test_published_post_reaches_both_directions_of_connections_once_at_the_head(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    sns: Any,
    topo: Topology,
    feed_worker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN an author with accepted connections both ways, each feed holding an older post
    graph = await small_graph(db)
    older = str(uuid.uuid4())
    for user in graph.connections:
        await feed_redis.lpush(feed_key(user), older)
    event = await create_post(db, graph.author)
    # WHEN the same PostCreated is published three times and a burst worker drains the queue
    await publish_events(sns, topo.topic_arn, [event, event, event])
    consumer, _ = await feed_worker(stack, sqs, feed_worker_settings, topo)
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN every connection's feed holds the post once, at the head, above the older one
    for user in graph.connections:
        assert await feed(feed_redis, user) == [post_id(event), older]
    # AND pending, declined and unrelated users got nothing
    held = await feeds_holding(feed_redis, graph.outsiders, post_id(event))
    assert held == dict.fromkeys(graph.outsiders, 0)
    assert await feed_redis.exists(*[feed_key(u) for u in graph.outsiders]) == 0
    # AND all three deliveries were acknowledged, none dead-lettered
    assert await depth(sqs, topo.queue_url(FEED)) == 0
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def test_raw_and_sns_enveloped_bodies_are_both_fanned_out(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    topo: Topology,
    feed_worker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN one post sent as a raw body and one wrapped in an SNS notification
    graph = await small_graph(db)
    raw, wrapped = await create_post(db, graph.author), await create_post(db, graph.author)
    url = topo.queue_url(FEED)
    await send_raw(sqs, url, raw.to_json(), raw.attributes())
    await send_raw(sqs, url, sns_notification(wrapped, topo.topic_arn))
    # WHEN a burst worker drains the queue
    consumer, _ = await feed_worker(stack, sqs, feed_worker_settings, topo)
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN both posts are in every connection's feed, once each
    for user in graph.connections:
        assert sorted(await feed(feed_redis, user)) == sorted([post_id(raw), post_id(wrapped)])
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
