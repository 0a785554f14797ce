"""Where the direct drivers' events go: the SNS topic or the Kafka events topic.

A driver hands over envelopes with their aggregate key (authorId for posts,
userId for profiles) and learns only whether every one went out. The events
are sent by the relay's own publisher of the run's transport, as if they were
outbox rows: on SNS in PublishBatch calls of 10 (the filter policies route
them), on Kafka as records keyed by aggregate, so a load run partitions events
exactly as production does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Protocol

from config.clients import open_sns
from config.settings import Settings
from contracts.errors import TransientError
from contracts.events import Envelope
from pipelines.relay.kafka import KafkaPublisher, open_producer
from pipelines.relay.ports import EventPublisher
from pipelines.relay.sns import SnsPublisher
from store.outbox import OutboxRow

Keyed = tuple[Envelope, uuid.UUID]


class EventSink(Protocol):
    """The event bus as a direct driver sees it."""

    async def publish(self, events: Sequence[Keyed]) -> None:
        """Publish every event; raise when any of them did not go out."""
        ...


def outbox_row(position: int, envelope: Envelope, key: uuid.UUID) -> OutboxRow:
    """An event as the relay would read it from the outbox; `position` is its id."""
    return OutboxRow(
        id=position,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        aggregate_key=str(key),
        body=envelope.to_json().decode(),
        attempts=0,
    )


class PublisherSink:
    """An `EventSink` over the relay's `EventPublisher` (SNS or Kafka)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def publish(self, events: Sequence[Keyed]) -> None:
        rows = [outbox_row(i, envelope, key) for i, (envelope, key) in enumerate(events)]
        result = await self._publisher.publish(rows)
        if result.failed:
            reason = next(iter(result.refused.values()), "the bus did not take them")
            raise TransientError(
                f"{len(result.failed)} of {len(rows)} event(s) were not published: {reason}."
            )


async def open_sink(
    stack: AsyncExitStack, settings: Settings, *, topic_arn: str | None, connections: int
) -> EventSink:
    """The sink of `settings.event_transport`, its client closed with `stack`."""
    if settings.event_transport == "kafka":
        producer = await open_producer(settings.kafka_bootstrap_servers)
        stack.push_async_callback(producer.stop)
        return PublisherSink(KafkaPublisher(producer, settings.events_topic))
    if topic_arn is None:
        raise ValueError("publishing to SNS needs the topic's ARN")
    sns = await open_sns(stack, settings, pool=connections)
    return PublisherSink(SnsPublisher(sns, topic_arn))
