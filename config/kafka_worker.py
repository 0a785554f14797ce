"""The Kafka part of a worker's composition (`EVENT_TRANSPORT=kafka`).

`config.worker.run_worker` builds the handler, the health server and the signal
handling for either transport; this module adds what only Kafka needs: the check
that `socialpipe queues create` made the topics, and the consumer group's runtime.
"""

from __future__ import annotations

from config.settings import Settings
from config.startup import quiet
from consumers.kafka.consumer import KafkaConsumer
from consumers.kafka.topics import KafkaUnavailable, declared_topics, open_admin
from consumers.options import ConsumerOptions
from consumers.topology import routes
from contracts.outcomes import EventHandler


async def check_topics(settings: Settings) -> None:
    """Fail with one sentence when the broker is down or `queues create` never ran."""
    # aiokafka logs each failed connect itself; the sentence below says it once, named.
    with quiet("aiokafka"):
        admin = await open_admin(settings)
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
    missing = [s.name for s in declared_topics(settings) if s.name not in existing]
    if missing:
        raise KafkaUnavailable(
            f"Kafka topic {missing[0]!r} does not exist; run `socialpipe queues create` first."
        )


def kafka_consumer(
    settings: Settings,
    options: ConsumerOptions,
    *,
    queue: str,
    handler: EventHandler,
    in_flight: int,
) -> KafkaConsumer:
    """The pipeline's consumer group, reading the event types its queue subscribes to."""
    # `--concurrency` counts events in flight; the runner counts handler chunks.
    chunks = max(1, in_flight // max(1, handler.max_batch))
    return KafkaConsumer(
        options,
        queue_name=queue,
        event_types=routes(settings)[queue],
        handler=handler,
        concurrency=chunks,
    )
