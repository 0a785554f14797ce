"""`DeadLetters` over Kafka: list, show, redrive and purge a pipeline's dead-letter topic."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from config.settings import Settings
from consumers.kafka.topics import dlq_topic, retry_topic
from consumers.messages import REDRIVE_MARK
from contracts.events import Envelope
from contracts.outcomes import ACK, DeadLetter, Outcome
from dlq.kafka import KafkaDeadLetters
from dlq.letters import MAX_RECEIVE_COUNT_EXCEEDED
from dlq.ports import RedriveOptions
from tests.factories import post_created, profile_updated, sns_notification
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import wait_until
from tests.integration.kafka.helpers import produce, read_topic, running


async def test_dead_letters_are_listed_shown_redriven_and_purged(
    kafka_settings: Settings,
) -> None:
    # GIVEN three posts a worker dead-lettered as invalid
    posts = [post_created() for _ in range(3)]
    await produce(kafka_settings, posts)
    healed = False

    async def refuse_until_healed(_: Envelope, __: int) -> Outcome:
        return ACK if healed else DeadLetter("InvalidEvent", "author unknown")

    handler = ScriptedHandler(refuse_until_healed)
    queue = kafka_settings.feed_queue
    async with running(kafka_settings, queue, handler) as consumer:
        await wait_until(lambda: consumer.settled == 3, within=30)
    dead = KafkaDeadLetters(kafka_settings.kafka_bootstrap_servers)
    try:
        # WHEN an operator lists them and shows one by its id and by the logged record id
        peek = await dead.peek(queue, limit=10)
        shown = await dead.get(queue, peek.messages[0].message_id)
        assert shown is not None and shown.source_message_id is not None
        by_source = await dead.get(queue, shown.source_message_id)
        # THEN all three are there with their reason, and reading consumed nothing
        assert peek.depth == 3 and len(peek.messages) == 3
        assert {m.error_type for m in peek.messages} == {"InvalidEvent"}
        assert shown.error_message == "author unknown" and shown.attempts == "1"
        assert by_source is not None and by_source.message_id == shown.message_id
        assert await dead.count(queue) == 3
        # WHEN they are redriven without --include-permanent
        held = await dead.redrive(queue, RedriveOptions())
        # THEN the invalid posts stay dead-lettered
        assert (held.moved, held.permanent) == (0, 3)
        assert await dead.count(queue) == 3
        # WHEN two are redriven once the cause is fixed, and the rest purged
        healed = True
        result = await dead.redrive(queue, RedriveOptions(max_messages=2, include_permanent=True))
        assert (result.moved, result.skipped) == (2, 1)
        assert await dead.count(queue) == 1
        async with running(kafka_settings, queue, handler) as consumer:
            await wait_until(lambda: len(handler.done) == 5, within=30)
        assert await dead.purge(queue) == 1
        # THEN the redriven posts were handled again and no dead letter is left
        assert await dead.count(queue) == 0
        assert sum(handler.calls.values()) == 5
    finally:
        await dead.close()


async def test_records_without_failure_headers_are_named_from_their_body_and_redriven_marked(
    kafka_settings: Settings,
) -> None:
    # GIVEN a raw post, an SNS-wrapped post and a profile update put on the dead-letter
    # topic without headers
    queue = kafka_settings.feed_queue
    bodies = [
        post_created().to_json(),
        sns_notification(post_created()),
        profile_updated(version=1).to_json(),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(dlq_topic(queue), body, key=b"k")
    finally:
        await producer.stop()
    dead = KafkaDeadLetters(kafka_settings.kafka_bootstrap_servers)
    try:
        # WHEN an operator lists them
        peek = await dead.peek(queue, limit=10)
        # THEN each is named by the event in its body, as exceeding maxReceiveCount
        assert sorted(m.event_type for m in peek.messages) == [
            "PostCreated",
            "PostCreated",
            "UserProfileUpdated",
        ]
        assert {m.error_type for m in peek.messages} == {MAX_RECEIVE_COUNT_EXCEEDED}
        # WHEN the PostCreated ones are redriven
        result = await dead.redrive(queue, RedriveOptions(event_type="PostCreated"))
        # THEN both reach the retry topic marked as redriven, and the profile update stays
        assert (result.moved, result.skipped) == (2, 1)
        assert result.by_error_type == {MAX_RECEIVE_COUNT_EXCEEDED: 2}
        retried = await read_topic(kafka_settings, retry_topic(queue))
        assert len(retried) == 2 and all(REDRIVE_MARK in r.headers for r in retried)
        [left] = (await dead.peek(queue, limit=10)).messages
        assert left.event_type == "UserProfileUpdated"
    finally:
        await dead.close()
