"""The feed worker over SQS when messages are poison or Redis fails."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.feed import FeedRedis
from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology
from tests.factories import post_created
from tests.integration.consumers.helpers import attrs, depth, drain
from tests.integration.feed_over_sqs.helpers import (
    FEED,
    eventually,
    feed_worker,
    feeds_holding,
    flaky_redis,
    metric,
    reads_timing_out,
    running,
    small_graph,
    visible,
)
from tests.integration.pipelines.feed.helpers import create_post, post_id
from tests.settings import PortFactory, SettingsFactory

RETRIED = "socialpipe_messages_retried_total"
RECEIVED = "socialpipe_messages_received_total"


def poison_bodies() -> dict[str, bytes]:
    """One body per permanent failure, keyed by the errorType it must be dead-lettered with."""
    missing = orjson.loads(post_created().to_json())
    del missing["payload"]["authorId"]
    future = orjson.loads(post_created().to_json())
    future["schemaVersion"] = "2.0"
    return {
        "MalformedMessage": b'{"eventId": "not closed',
        "InvalidEvent": orjson.dumps(missing),
        "UnsupportedSchemaVersion": orjson.dumps(future),
        "MessageTooLarge": orjson.dumps({"pad": "x" * (300 * 1024)}),
    }


async def test_poison_messages_are_dead_lettered_while_the_same_worker_serves_good_ones(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    topo: Topology,
    feed_worker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a running feed worker
    graph = await small_graph(db)
    url, dlq = topo.queue_url(FEED), topo.dlq_url(FEED)
    consumer, _ = await feed_worker(stack, sqs, feed_worker_settings, topo)
    served: list[str] = []
    async with running(consumer) as task:
        for count, body in enumerate(poison_bodies().values(), start=1):
            # WHEN a poison body arrives, then a good post
            await send_raw(sqs, url, body)
            good = await create_post(db, graph.author)
            await send_raw(sqs, url, good.to_json(), good.attributes())
            served.append(post_id(good))

            # THEN the poison one reaches the DLQ and the good one every feed
            async def done(post: str = post_id(good), dead: int = count) -> bool:
                held = await feeds_holding(feed_redis, graph.connections, post)
                return set(held.values()) == {1} and await depth(sqs, dlq) == dead

            await eventually(done, what=f"poison body {count} dead-lettered, good post served")
            assert not task.done()
    # AND each poison body is in the DLQ once, with its error type and a reason
    dead = [attrs(m) for m in await drain(sqs, dlq)]
    assert sorted(a["errorType"] for a in dead) == sorted(poison_bodies())
    for a in dead:
        assert a["errorMessage"]
        assert a["attempts"] == "1"
        assert a["sourceQueue"] == FEED
    for post in served:
        held = await feeds_holding(feed_redis, graph.connections, post)
        assert held == dict.fromkeys(graph.connections, 1)
    assert await depth(sqs, url) == 0


async def test_redis_timing_out_transiently_is_retried_and_succeeds(
    db: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    sqs: Any,
    topo: Topology,
    worker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a feed worker whose first 5 Redis connection checkouts time out: more than
    # one receive's in-process attempts (1 + 3), so the visibility backoff is used too
    graph = await small_graph(db)
    client, pool = flaky_redis(worker_settings.redis_url, failures=5, error=RedisTimeoutError)
    stack.push_async_callback(client.aclose)
    event = await create_post(db, graph.author)
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
    consumer, _ = await feed_worker(stack, sqs, worker_settings, topo, redis=client)
    retried = metric(RETRIED, queue=FEED, error_type="TimeoutError")
    # WHEN it drains the queue
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN every failure was consumed, the message was released for a later receive as a
    # timeout, the post reached every feed once and nothing is dead
    assert pool.failures == 0
    assert pool.checkouts > 5
    assert metric(RETRIED, queue=FEED, error_type="TimeoutError") == retried + 1
    held = await feeds_holding(redis_client, graph.connections, post_id(event))
    assert held == dict.fromkeys(graph.connections, 1)
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_redis_refusing_connections_for_a_while_pauses_then_succeeds(
    db: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    sqs: Any,
    topo: Topology,
    worker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a feed worker whose Redis refuses the first 5 connection checkouts (an outage:
    # the worker's own health probes go through the same pool)
    graph = await small_graph(db)
    client, pool = flaky_redis(worker_settings.redis_url, failures=5)
    stack.push_async_callback(client.aclose)
    event = await create_post(db, graph.author)
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
    consumer, _ = await feed_worker(stack, sqs, worker_settings, topo, redis=client)
    retried = metric(RETRIED, queue=FEED, error_type="DependencyDown")
    # WHEN it drains the queue
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN the message was released once for the outage (no in-process retries), the
    # probes used up the failures, the post reached every feed once and nothing is dead
    assert metric(RETRIED, queue=FEED, error_type="DependencyDown") == retried + 1
    assert pool.failures == 0
    held = await feeds_holding(redis_client, graph.connections, post_id(event))
    assert held == dict.fromkeys(graph.connections, 1)
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_redis_timing_out_persistently_is_dead_lettered_after_the_fourth_receive(
    db: asyncpg.Pool, sqs: Any, topo: Topology, worker_settings: Settings, stack: AsyncExitStack
) -> None:
    # GIVEN a feed worker whose Redis answers its health probe but times out every read
    graph = await small_graph(db)
    slow = reads_timing_out(worker_settings.redis_url)
    stack.push_async_callback(slow.aclose)
    event = await create_post(db, graph.author)
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
    consumer, _ = await feed_worker(stack, sqs, worker_settings, topo, redis=slow)
    # WHEN it drains the queue
    await asyncio.wait_for(consumer.run(burst=True), 45)
    # THEN the message is in the DLQ, dead-lettered on its 4th receive as a timeout,
    # the reason naming the Redis read that failed
    dead = await drain(sqs, topo.dlq_url(FEED))
    assert len(dead) == 1
    assert orjson.loads(dead[0]["Body"])["eventId"] == str(event.event_id)
    reason = attrs(dead[0])
    assert reason["attempts"] == "4"
    assert reason["errorType"] == "TimeoutError"
    assert reason["errorMessage"].startswith("Reading cached connections from Redis failed: ")
    assert "Timeout reading from socket" in reason["errorMessage"]
    assert slow.timeouts >= 4
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_redis_down_persistently_pauses_the_worker_instead_of_dead_lettering(
    db: asyncpg.Pool,
    sqs: Any,
    topo: Topology,
    settings: Settings,
    stack: AsyncExitStack,
    settings_factory: SettingsFactory,
    port_factory: PortFactory,
) -> None:
    # GIVEN a running feed worker whose Redis is a closed port
    graph = await small_graph(db)
    dead_redis = f"redis://127.0.0.1:{port_factory()}/0"
    cfg = settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url, pollers=1, redis_url=dead_redis
    )
    event = await create_post(db, graph.author)
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())
    consumer, _ = await feed_worker(stack, sqs, cfg, topo)
    async with running(consumer) as task:
        # WHEN its first attempt finds Redis down
        async def paused() -> bool:
            down = not consumer.gate.ready and not consumer.ready
            return down and await visible(sqs, topo.queue_url(FEED)) == 1

        await eventually(paused, what="worker paused for Redis, the message receivable again")
        # THEN it stays paused and takes no message though one is there: 3 s outlast
        # a receive wait (1 s) several times
        received = metric(RECEIVED, queue=FEED)
        await asyncio.sleep(3)
        assert metric(RECEIVED, queue=FEED) == received
        assert not consumer.ready
        assert consumer.gate.down.keys() == {"Redis"}
        assert not task.done()
    # AND the message waits in the queue, not in the DLQ
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
    assert await visible(sqs, topo.queue_url(FEED)) == 1
