"""The Kafka adapter of `EventPublisher`: keyed records on the events topic.

The key is the outbox row's `aggregate_key` (authorId, userId, requesterId),
so every event of one user lands on one partition and stays in order. The
producer waits for all in-sync replicas (`acks=all`) and aiokafka keeps one
batch in flight per partition, so a retry cannot reorder a key's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from contracts.errors import PermanentError, TransientError
from contracts.events import Envelope, decode_body
from pipelines.relay.ports import PublishResult
from store.outbox import OutboxRow

# The body limit of the envelope contract, plus room for headers and framing.
MAX_REQUEST_BYTES: Final = 1_048_576
REFUSALS: Final = (MessageSizeTooLargeError, RecordListTooLargeError)


def kafka_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in envelope.attributes().items() if v]


class KafkaPublisher:
    """Publishes outbox rows to `topic`, keyed by aggregate; one producer per process."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        refused: dict[int, str] = {}
        sends: list[tuple[OutboxRow, asyncio.Future[Any]]] = []
        try:
            for row in rows:
                try:
                    envelope = decode_body(row.body)
                except PermanentError as exc:
                    refused[row.id] = f"{type(exc).__name__}: {exc}"
                    continue
                future = await self._producer.send(
                    self._topic,
                    value=row.body.encode(),
                    key=row.aggregate_key.encode(),
                    headers=kafka_headers(envelope),
                )
                sends.append((row, future))
        except KafkaError as exc:
            raise TransientError(f"Publishing to Kafka failed: {exc}.") from exc
        unsent = await self._collect(sends, refused)
        if sends and len(unsent) == len(sends):
            raise TransientError(f"Publishing to Kafka failed for all {len(sends)} rows.")
        return PublishResult(refused, frozenset(unsent))

    async def _collect(
        self, sends: Sequence[tuple[OutboxRow, asyncio.Future[Any]]], refused: dict[int, str]
    ) -> set[int]:
        results = await asyncio.gather(*(f for _, f in sends), return_exceptions=True)
        unsent: set[int] = set()
        for (row, _), result in zip(sends, results, strict=True):
            if isinstance(result, REFUSALS):
                refused[row.id] = f"{type(result).__name__}: {result}"
            elif isinstance(result, BaseException):
                unsent.add(row.id)
        return unsent


async def open_producer(bootstrap: str) -> Any:
    """A started producer for the relay; the caller stops it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_request_size=MAX_REQUEST_BYTES,
        linger_ms=5,
        request_timeout_ms=15_000,
    )
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise TransientError(f"cannot reach Kafka at {bootstrap} ({exc}).") from None
    return producer
