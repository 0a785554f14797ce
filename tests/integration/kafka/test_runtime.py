"""The Kafka consumer runtime over a real tansu broker, with a scripted handler."""

from __future__ import annotations

import asyncio

from config.settings import Settings
from consumers.kafka.topics import dlq_topic, retry_topic
from contracts.events import Envelope
from contracts.outcomes import ACK, DeadLetter, Outcome, Retry
from tests.factories import post_created
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import wait_until
from tests.integration.kafka.helpers import produce, read_topic, running, wait_until_ready


async def test_routed_events_are_handled_once_and_committed(kafka_settings: Settings) -> None:
    # GIVEN five posts on the events topic
    posts = [post_created() for _ in range(5)]
    await produce(kafka_settings, posts)
    handler = ScriptedHandler()
    queue = kafka_settings.feed_queue
    # WHEN the feed group consumes them
    async with running(kafka_settings, queue, handler) as consumer:
        await wait_until(lambda: len(handler.done) == 5, within=30)
        await wait_until(lambda: consumer.settled == 5, within=10)
    # THEN each was handled exactly once, and a second run of the group gets nothing
    assert sorted(handler.calls.values()) == [1] * 5
    again = ScriptedHandler()
    async with running(kafka_settings, queue, again) as consumer:
        await wait_until(lambda: consumer.ready, within=30)
        await asyncio.sleep(0.5)
    assert again.calls == {}


async def test_permanent_failure_goes_to_the_dead_letter_topic_with_its_reason(
    kafka_settings: Settings,
) -> None:
    # GIVEN a post the handler refuses permanently
    bad = post_created()

    async def refuse(env: Envelope, _: int) -> Outcome:
        return DeadLetter("InvalidEvent", "nope") if env.event_id == bad.event_id else ACK

    await produce(kafka_settings, [bad, post_created()])
    handler = ScriptedHandler(refuse)
    queue = kafka_settings.feed_queue
    # WHEN the group consumes it
    async with running(kafka_settings, queue, handler) as consumer:
        await wait_until(lambda: consumer.settled == 2, within=30)
    # THEN the dead-letter topic holds it once, with the reason in headers
    dead = await read_topic(kafka_settings, dlq_topic(queue))
    assert len(dead) == 1
    assert dead[0].headers["errorType"] == "InvalidEvent"
    assert dead[0].headers["errorMessage"] == "nope"
    assert dead[0].headers["sourceQueue"] == queue
    assert dead[0].headers["eventType"] == "PostCreated"
    assert bad.event_id.hex in dead[0].value.decode().replace("-", "")


async def test_transient_failure_is_retried_through_the_retry_topic(
    kafka_settings: Settings,
) -> None:
    # GIVEN a post whose handling fails transiently through every in-process retry
    # of its first delivery (INPROCESS_RETRIES=3: four calls)
    async def fails_first(_: Envelope, call: int) -> Outcome:
        return Retry("TransientError", "redis hiccup") if call <= 4 else ACK

    await produce(kafka_settings, [post_created()])
    handler = ScriptedHandler(fails_first)
    queue = kafka_settings.feed_queue
    # WHEN the group consumes it
    async with running(kafka_settings, queue, handler) as consumer:
        await wait_until(lambda: consumer.settled == 2, within=30)
    # THEN it went through the retry topic as attempt 2 and was handled, not dead-lettered
    retried = await read_topic(kafka_settings, retry_topic(queue))
    assert [r.headers["attempts"] for r in retried] == ["2"]
    assert retried[0].headers["lastErrorType"] == "TransientError"
    assert list(handler.calls.values()) == [5]
    assert await read_topic(kafka_settings, dlq_topic(queue)) == []


async def test_a_record_reaches_an_idle_worker_without_waiting_out_a_long_fetch(
    kafka_settings: Settings,
) -> None:
    # GIVEN a worker that has joined its group and has nothing to do (its retry
    # topic stays empty: the broker may hold a fetch that includes it until the
    # fetch's maximum wait, which faust alone would leave at 1.5 s)
    handler = ScriptedHandler()
    async with running(kafka_settings, kafka_settings.feed_queue, handler) as consumer:
        await wait_until_ready(consumer)
        # WHEN eight posts are produced one at a time, each after the last was handled
        took = []
        for n in range(1, 9):
            began = asyncio.get_running_loop().time()
            await produce(kafka_settings, [post_created()])
            await wait_until(lambda n=n: len(handler.done) == n, within=10)  # type: ignore[misc]
            took.append(asyncio.get_running_loop().time() - began)
    # THEN each arrived within a short fetch wait, not after ~0.75 s on average
    assert sum(took) / len(took) < 0.4, took
