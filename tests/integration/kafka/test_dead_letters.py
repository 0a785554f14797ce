"""`DeadLetters` over Kafka: list, show, redrive and purge a pipeline's dead-letter topic."""

from __future__ import annotations

from config.settings import Settings
from contracts.events import Envelope
from contracts.outcomes import ACK, DeadLetter, Outcome
from dlq.kafka import KafkaDeadLetters
from dlq.ports import RedriveOptions
from tests.integration.consumers.helpers import ScriptedHandler, wait_until
from tests.integration.kafka.helpers import post, produce, running


async def test_dead_letters_are_listed_shown_redriven_and_purged(
    kafka_settings: Settings,
) -> None:
    # GIVEN three posts a worker dead-lettered
    posts = [post() for _ in range(3)]
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
        # WHEN an operator lists and shows them
        peek = await dead.peek(queue, limit=10)
        shown = await dead.get(queue, peek.messages[0].message_id)
        # THEN all three are there with their reason, and reading consumed nothing
        assert peek.depth == 3 and len(peek.messages) == 3
        assert {m.error_type for m in peek.messages} == {"InvalidEvent"}
        assert shown is not None and shown.error_message == "author unknown"
        assert await dead.count(queue) == 3
        # WHEN two are redriven once the cause is fixed, and the rest purged
        healed = True
        result = await dead.redrive(queue, RedriveOptions(max_messages=2))
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
