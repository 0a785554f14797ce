"""The feed worker over SQS while its connection source fails: stale fallback, then
the circuit breaker pausing polling until half-open."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest

from config.feed import FeedRedis
from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology
from contracts.events import Envelope
from store.connections import PgConnectionSource
from tests.fakes import FakeClock
from tests.integration.consumers.helpers import depth
from tests.integration.feed_over_sqs.helpers import (
    FEED,
    SwitchableSource,
    eventually,
    feed_worker,
    feeds_holding,
    metric,
    running,
    small_graph,
)
from tests.integration.pipelines.feed.helpers import cached_connections_key, create_post, post_id
from tests.settings import SettingsFactory

OPEN_SECONDS = 30.0
BREAKER = "socialpipe_circuit_breaker_state"
RECEIVED = "socialpipe_messages_received_total"


@pytest.fixture
def breaker_settings(
    settings: Settings, settings_factory: SettingsFactory, feed_redis_url: str
) -> Settings:
    """One poller and a breaker that opens after two failing calls of two, on `feed_redis`."""
    return settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url,
        redis_url=feed_redis_url,
        pollers=1,
        breaker_min_calls=2,
        breaker_failure_rate=0.5,
        breaker_open_seconds=OPEN_SECONDS,
    )


async def send(sqs: Any, topo: Topology, event: Envelope) -> None:
    await send_raw(sqs, topo.queue_url(FEED), event.to_json(), event.attributes())


async def test_failing_source_falls_back_to_the_stale_cached_list(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    topo: Topology,
    breaker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a worker that cached the author's connections, whose fresh copy then expired
    graph = await small_graph(db)
    source = SwitchableSource(PgConnectionSource(db))
    cfg = breaker_settings
    consumer, _ = await feed_worker(stack, sqs, cfg, topo, connection_source=source)
    await send(sqs, topo, await create_post(db, graph.author))
    await asyncio.wait_for(consumer.run(burst=True), 30)
    assert await feed_redis.delete(cached_connections_key(feed_redis, graph.author)) == 1
    # WHEN the source fails and a new post arrives
    source.down = True
    event = await create_post(db, graph.author)
    await send(sqs, topo, event)
    consumer, _ = await feed_worker(stack, sqs, cfg, topo, connection_source=source)
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN the source was tried, and the stale list served every connection
    assert source.failed_reads >= 1
    held = await feeds_holding(feed_redis, graph.connections, post_id(event))
    assert held == dict.fromkeys(graph.connections, 1)
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def test_open_breaker_without_cache_pauses_polling_until_half_open(
    db: asyncpg.Pool,
    feed_redis: FeedRedis,
    sqs: Any,
    topo: Topology,
    breaker_settings: Settings,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a running worker whose connection source is down and nothing is cached
    graph = await small_graph(db)
    source = SwitchableSource(PgConnectionSource(db))
    source.down = True
    clock = FakeClock()
    cfg = breaker_settings
    consumer, _ = await feed_worker(stack, sqs, cfg, topo, connection_source=source, clock=clock)
    event = await create_post(db, graph.author)
    await send(sqs, topo, event)
    async with running(consumer):
        # WHEN its failures open the breaker
        async def paused() -> bool:
            waiting = await _visible(sqs, topo) == 1
            return metric(BREAKER, breaker="connections") == 2 and not consumer.ready and waiting

        await eventually(paused, what="breaker open, poller paused, message back in the queue")
        # THEN polling stays paused: the waiting message is not received again. Proving
        # that nothing happens needs a window; 1.5 s outlasts a receive wait (1 s) and
        # the retry backoff the message got (at most 1 s).
        received = metric(RECEIVED, queue=FEED)
        await asyncio.sleep(1.5)
        assert metric(RECEIVED, queue=FEED) == received
        assert await _visible(sqs, topo) == 1
        assert not consumer.ready
        # WHEN the source recovers and the breaker's open time has passed
        source.down = False
        clock.advance(OPEN_SECONDS)

        # THEN the half-open trial succeeds, the breaker closes and the post is served
        async def served() -> bool:
            held = await feeds_holding(feed_redis, graph.connections, post_id(event))
            return set(held.values()) == {1}

        await eventually(served, what="post served after half-open")
        assert metric(BREAKER, breaker="connections") == 0
        assert metric(RECEIVED, queue=FEED) > received

        async def ready() -> bool:
            return consumer.ready

        await eventually(ready, what="worker ready again")
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def _visible(sqs: Any, topo: Topology) -> int:
    got = await sqs.get_queue_attributes(
        QueueUrl=topo.queue_url(FEED), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(got["Attributes"]["ApproximateNumberOfMessages"])
