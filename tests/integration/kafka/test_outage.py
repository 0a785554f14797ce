"""An outage pauses the Kafka worker as it does the SQS one: no dead letter for it."""

from __future__ import annotations

import asyncio

from config.settings import Settings
from consumers.kafka.topics import dlq_topic
from contracts.errors import DependencyDown
from contracts.events import Envelope
from contracts.outcomes import ACK, Outcome
from tests.factories import post_created
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import wait_until
from tests.integration.kafka.helpers import produce, read_topic, running


async def test_an_outage_longer_than_the_attempt_budget_pauses_and_dead_letters_nothing(
    kafka_settings: Settings,
) -> None:
    # GIVEN a handler whose dependency (with a probe) is down, and three posts
    down = asyncio.Event()
    down.set()

    async def probe() -> None:
        if down.is_set():
            raise ConnectionRefusedError("Redis refuses connections")

    async def push(_: Envelope, __: int) -> Outcome:
        if down.is_set():
            raise DependencyDown("Redis", "Pushing post to feeds in Redis failed: refused")
        return ACK

    handler = ScriptedHandler(push)
    handler.dependencies = {"Redis": probe}
    posts = [post_created() for _ in range(3)]
    await produce(kafka_settings, posts)
    queue = kafka_settings.feed_queue
    async with running(kafka_settings, queue, handler) as consumer:
        # WHEN the worker meets the outage
        await wait_until(lambda: bool(handler.calls), within=30)
        # THEN it stops being ready and takes no more work while it lasts
        # (a post is tried at most once: an outage is not retried in process, and
        # records wait behind the closed gate)
        await wait_until(lambda: not consumer.ready, within=10)
        calls_at_close = sum(handler.calls.values())
        await asyncio.sleep(3)
        assert sum(handler.calls.values()) == calls_at_close <= len(posts)
        # WHEN the dependency comes back THEN every post is handled, none dead-lettered
        down.clear()
        await wait_until(lambda: len(set(handler.done)) == 3 and consumer.ready, within=60)
    assert all(count <= kafka_settings.max_receive_count for count in handler.calls.values())
    assert await read_topic(kafka_settings, dlq_topic(queue)) == []
