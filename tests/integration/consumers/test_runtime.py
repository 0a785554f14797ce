"""The SQS consumer runtime against the moto server."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology, ensure_topology
from contracts.errors import TransientError
from contracts.events import Envelope
from contracts.outcomes import ACK, Outcome, Retry
from tests.factories import post_created, sns_notification
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import attrs, depth, drain, make_consumer, wait_until
from tests.settings import SettingsFactory

FEED = "feed-fanout"


@pytest.fixture
def settings(aws: str, database_url: str, settings_factory: SettingsFactory) -> Settings:
    """One poller: moto's ReceiveMessage is not atomic across concurrent requests, so two
    pollers can both get the same message; exact call counts below need one poller
    (real SQS duplicates rarely, and the handlers are idempotent either way)."""
    return settings_factory(aws_endpoint_url=aws, pollers=1)


@pytest.fixture
async def topo(sqs: Any, sns: Any, settings: Settings) -> Topology:
    return await ensure_topology(sqs, sns, settings)


async def _send(sqs: Any, topo: Topology, *envelopes: Envelope) -> None:
    for env in envelopes:
        await send_raw(sqs, topo.queue_url(FEED), env.to_json(), env.attributes())


async def test_acked_messages_are_deleted(sqs: Any, settings: Settings, topo: Topology) -> None:
    # GIVEN three events on the queue
    events = [post_created() for _ in range(3)]
    await _send(sqs, topo, *events)
    handler = ScriptedHandler()
    # WHEN a burst consumer runs
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 30)
    # THEN each was handled once and the queue and its DLQ are empty
    assert sorted(handler.done) == sorted(e.event_id for e in events)
    assert await depth(sqs, topo.queue_url(FEED)) == 0
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def test_raw_and_sns_enveloped_bodies_both_decode(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN one raw envelope and one wrapped in an SNS notification
    raw, wrapped = post_created(), post_created()
    await send_raw(sqs, topo.queue_url(FEED), raw.to_json())
    await send_raw(sqs, topo.queue_url(FEED), sns_notification(wrapped))
    handler = ScriptedHandler()
    # WHEN consumed
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 30)
    # THEN the handler saw both envelopes
    assert set(handler.done) == {raw.event_id, wrapped.event_id}


async def test_poison_messages_are_dead_lettered_and_good_ones_acked(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN four poison bodies and two good events in the queue
    good = [post_created(), post_created()]
    missing = orjson.loads(post_created().to_json())
    del missing["payload"]["authorId"]
    future = orjson.loads(post_created().to_json()) | {"schemaVersion": "2.0"}
    poison = {
        "MalformedMessage": b"{not json",
        "InvalidEvent": orjson.dumps(missing),
        "UnsupportedSchemaVersion": orjson.dumps(future),
        "MessageTooLarge": orjson.dumps({"pad": "x" * (300 * 1024)}),
    }
    url = topo.queue_url(FEED)
    for body in poison.values():
        await send_raw(sqs, url, body, {"correlationId": "poison"})
    await _send(sqs, topo, *good)
    handler = ScriptedHandler()
    # WHEN consumed
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 30)
    # THEN the good ones were handled, and each poison one is in the DLQ with its reason
    assert sorted(handler.done) == sorted(e.event_id for e in good)
    dead = [attrs(m) for m in await drain(sqs, topo.dlq_url(FEED))]
    assert sorted(a["errorType"] for a in dead) == sorted(poison)
    for a in dead:
        assert a["attempts"] == "1"
        assert a["sourceQueue"] == FEED
        assert a["errorMessage"]
        assert a["failedAt"].endswith("Z")
        assert a["correlationId"] == "poison"
    assert await depth(sqs, url) == 0


async def test_transient_failure_then_success_is_acked_in_process(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a handler that fails transiently twice, then succeeds
    async def flaky(_: Envelope, call: int) -> Outcome:
        if call <= 2:
            raise TransientError("database hiccup")
        return ACK

    handler = ScriptedHandler(flaky)
    event = post_created()
    await _send(sqs, topo, event)
    # WHEN consumed
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 30)
    # THEN it took three calls within one receive and nothing was dead-lettered
    assert handler.calls[event.event_id] == 3
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_persistent_transient_failure_is_dead_lettered_on_the_last_receive(
    sqs: Any, topo: Topology, aws: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN a handler that always times out, a transient failure that is not an
    # outage (no in-process retries, fast backoff)
    settings = settings_factory(
        aws_endpoint_url=aws, pollers=1, inprocess_retries=0, retry_base_seconds=0.5
    )

    async def slow(_: Envelope, __: int) -> Outcome:
        raise TimeoutError("the search index did not answer in time")

    handler = ScriptedHandler(slow)
    event = post_created()
    await _send(sqs, topo, event)
    # WHEN consumed until the queue drains
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 60)
    # THEN it was received max_receive_count times, then dead-lettered with its reason
    assert handler.calls[event.event_id] == settings.max_receive_count
    (dead,) = await drain(sqs, topo.dlq_url(FEED))
    a = attrs(dead)
    assert a["errorType"] == "TimeoutError"
    assert a["errorMessage"] == (
        "Handling the event failed: the search index did not answer in time"
    )
    assert a["attempts"] == str(settings.max_receive_count)
    assert orjson.loads(dead["Body"])["eventId"] == str(event.event_id)


async def test_unknown_exception_is_retried_by_visibility_not_in_process(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a handler with a bug on the first call only
    async def buggy(_: Envelope, call: int) -> Outcome:
        if call == 1:
            raise KeyError("oops")
        return ACK

    handler = ScriptedHandler(buggy)
    event = post_created()
    await _send(sqs, topo, event)
    # WHEN consumed
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 30)
    # THEN the second call came from a second receive and the message was acked
    assert handler.calls[event.event_id] == 2
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def test_batches_respect_max_batch(sqs: Any, settings: Settings, topo: Topology) -> None:
    # GIVEN 12 events and a handler taking at most 5 at a time
    await _send(sqs, topo, *[post_created() for _ in range(12)])
    handler = ScriptedHandler(max_batch=5)
    # WHEN consumed
    await asyncio.wait_for(
        make_consumer(sqs, settings, topo, handler, concurrency=20).run(burst=True), 30
    )
    # THEN all were handled in chunks of at most five
    assert len(handler.done) == 12
    assert max(handler.batch_sizes) <= 5


async def test_stop_finishes_in_flight_work_and_releases_queued_messages(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN slow work, concurrency 2 and more messages than can run at once
    release = asyncio.Event()

    async def slow(_: Envelope, __: int) -> Outcome:
        await release.wait()
        return ACK

    events = [post_created() for _ in range(8)]
    await _send(sqs, topo, *events)
    handler = ScriptedHandler(slow)
    consumer = make_consumer(sqs, settings, topo, handler, concurrency=2)
    run = asyncio.create_task(consumer.run())
    await wait_until(lambda: len(handler.started) == 2)
    # WHEN a stop is requested while two handlers are mid-work
    consumer.request_stop()
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.wait_for(run, 15)
    # THEN the two finished and were deleted, the rest are receivable at once, none is lost
    assert len(handler.done) == 2
    rest = await drain(sqs, topo.queue_url(FEED))
    got = {orjson.loads(m["Body"])["eventId"] for m in rest} | {str(i) for i in handler.done}
    assert got == {str(e.event_id) for e in events}
    assert len(rest) == 6


async def test_work_outliving_the_grace_is_cancelled_and_released(
    sqs: Any, topo: Topology, aws: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN a handler that never finishes and a short shutdown grace
    settings = settings_factory(aws_endpoint_url=aws, pollers=1, shutdown_grace_seconds=0.3)

    async def stuck(_: Envelope, __: int) -> Outcome:
        await asyncio.Event().wait()
        return ACK

    event = post_created()
    await _send(sqs, topo, event)
    handler = ScriptedHandler(stuck)
    consumer = make_consumer(sqs, settings, topo, handler)
    run = asyncio.create_task(consumer.run())
    await wait_until(lambda: len(handler.started) == 1)
    # WHEN stopped
    consumer.request_stop()
    await asyncio.wait_for(run, 10)
    # THEN run returned normally and the message is receivable again at once
    (again,) = await drain(sqs, topo.queue_url(FEED))
    assert orjson.loads(again["Body"])["eventId"] == str(event.event_id)


async def test_heartbeat_keeps_slow_message_invisible(
    sqs: Any, topo: Topology, aws: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN a visibility timeout of 2 s and work that takes 3.5 s
    settings = settings_factory(aws_endpoint_url=aws, pollers=1, visibility_timeout=2)
    await sqs.set_queue_attributes(
        QueueUrl=topo.queue_url(FEED), Attributes={"VisibilityTimeout": "2"}
    )

    async def slow(_: Envelope, __: int) -> Outcome:
        await asyncio.sleep(3.5)
        return ACK

    event = post_created()
    await _send(sqs, topo, event)
    handler = ScriptedHandler(slow)
    consumer = make_consumer(sqs, settings, topo, handler)
    # WHEN consumed
    await asyncio.wait_for(consumer.run(burst=True), 30)
    # THEN the message was never redelivered, thanks to extensions
    assert handler.calls[event.event_id] == 1
    assert consumer.heartbeat_extensions >= 2
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_polling_pauses_and_readiness_drops_while_the_handler_is_not_ready(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN a handler whose dependency is down, and one event queued
    class Gated(ScriptedHandler):
        gate = asyncio.Event()

        async def wait_ready(self) -> None:
            await self.gate.wait()

    handler = Gated()
    await _send(sqs, topo, post_created())
    consumer = make_consumer(sqs, settings, topo, handler)
    run = asyncio.create_task(consumer.run())
    try:
        await asyncio.sleep(0.3)
        # THEN nothing is received and the consumer is not ready
        assert not consumer.ready
        assert handler.started == []
        # WHEN the dependency comes back THEN it polls, handles and reports ready
        handler.gate.set()
        await wait_until(lambda: len(handler.done) == 1 and consumer.ready)
    finally:
        consumer.request_stop()
        await asyncio.wait_for(run, 10)


async def test_retry_delay_from_the_handler_overrides_the_backoff(
    sqs: Any, topo: Topology, aws: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN a long computed backoff but a handler asking for an immediate retry
    settings = settings_factory(
        aws_endpoint_url=aws, pollers=1, retry_base_seconds=60, inprocess_retries=0
    )

    async def later(_: Envelope, call: int) -> Outcome:
        return Retry("Busy", "come back now", delay=0) if call == 1 else ACK

    handler = ScriptedHandler(later)
    event = post_created()
    await _send(sqs, topo, event)
    # WHEN consumed THEN the second receive comes at once and acks it
    await asyncio.wait_for(make_consumer(sqs, settings, topo, handler).run(burst=True), 20)
    assert handler.calls[event.event_id] == 2
    assert await depth(sqs, topo.queue_url(FEED)) == 0


async def test_several_pollers_handle_every_message(
    sqs: Any, topo: Topology, aws: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN 40 events and three pollers
    settings = settings_factory(aws_endpoint_url=aws, pollers=3)
    events = [post_created() for _ in range(40)]
    await _send(sqs, topo, *events)
    handler = ScriptedHandler()
    # WHEN consumed
    await asyncio.wait_for(
        make_consumer(sqs, settings, topo, handler, concurrency=8).run(burst=True), 30
    )
    # THEN every event was handled (at least once: moto may hand one to two pollers)
    assert set(handler.done) == {e.event_id for e in events}
    assert await depth(sqs, topo.queue_url(FEED)) == 0


class _CountingSqs:
    """The real client, with every receive's MaxNumberOfMessages recorded."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.asked: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    async def receive_message(self, **kwargs: Any) -> Any:
        self.asked.append(kwargs["MaxNumberOfMessages"])
        return await self._sqs.receive_message(**kwargs)


async def test_a_busy_handler_gets_the_backlog_in_large_chunks_from_full_receives(
    sqs: Any, settings: Settings, topo: Topology
) -> None:
    # GIVEN 60 queued events and a handler taking up to 50 at once, two chunks at a time
    events = [post_created() for _ in range(60)]
    await _send(sqs, topo, *events)
    release = asyncio.Event()

    async def held(_: Envelope, __: int) -> Outcome:
        await release.wait()
        return ACK

    handler = ScriptedHandler(held, max_batch=50)
    counting = _CountingSqs(sqs)
    consumer = make_consumer(counting, settings, topo, handler, concurrency=100)
    run = asyncio.create_task(consumer.run(burst=True))
    # WHEN both running chunks are held until everything has been received
    await wait_until(lambda: len(handler.batch_sizes) == 2)
    url = topo.queue_url(FEED)
    for _ in range(200):
        got = await sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
        if int(got["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 60:
            break
        await asyncio.sleep(0.02)
    release.set()
    await asyncio.wait_for(run, 30)
    # THEN what piled up meanwhile came as one chunk of several receives, and every
    # receive asked for a full ten
    assert sorted(str(e) for e in handler.done) == sorted(str(e.event_id) for e in events)
    assert len(handler.batch_sizes) == 3
    assert handler.batch_sizes[2] == 60 - sum(handler.batch_sizes[:2]) > 10
    assert set(counting.asked) == {10}
