"""Producing to and reading from the test broker, and running a Kafka consumer in a task."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from config.settings import Settings
from config.worker import consumer_options
from consumers.kafka.consumer import KafkaConsumer
from consumers.kafka.records import envelope_headers, header_map
from consumers.topology import routes
from contracts.events import Envelope
from contracts.outcomes import EventHandler


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def key_of(envelope: Envelope) -> bytes:
    payload = envelope.payload
    for name in ("author_id", "user_id", "requester_id"):
        if hasattr(payload, name):
            return str(getattr(payload, name)).encode()
    return str(envelope.event_id).encode()


async def produce(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    """Publish envelopes to the events topic, keyed as the relay keys them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for env in envelopes:
            await producer.send_and_wait(
                settings.events_topic, env.to_json(), key=key_of(env), headers=envelope_headers(env)
            )
    finally:
        await producer.stop()


async def produce_raw(
    settings: Settings, body: bytes, headers: dict[str, str], key: bytes = b"k"
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.events_topic,
            body,
            key=key,
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record currently in `topic`, without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: list[Record] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                got.extend(
                    Record(tp.partition, m.offset, m.key, m.value, header_map(m.headers))
                    for m in messages
                )
        return got
    finally:
        await consumer.stop()


@asynccontextmanager
async def running(
    settings: Settings, queue: str, handler: EventHandler, *, concurrency: int = 4
) -> AsyncIterator[KafkaConsumer]:
    """A consumer running in a task; stopped (and drained) on exit."""
    consumer = KafkaConsumer(
        consumer_options(settings),
        queue_name=queue,
        event_types=routes(settings)[queue],
        handler=handler,
        concurrency=concurrency,
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 30)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment under which a `socialpipe` process sees `settings` (plus `extra`)."""
    values = {k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None}
    return {**os.environ, **values, **extra}


async def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (0 where it never committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        found: dict[int, int] = {}
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            found[p] = await consumer.committed(TopicPartition(topic, p)) or 0
        return found
    finally:
        await consumer.stop()


async def wait_until_ready(consumer: KafkaConsumer, *, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not consumer.ready:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the consumer did not join its group before the deadline")
        await asyncio.sleep(0.05)
