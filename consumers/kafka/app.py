"""The faust app of one pipeline: consumer group membership, fetching and offset commits.

faust owns the group protocol, partition assignment, fetch flow and the
commit of acked offsets (every `KAFKA_COMMIT_INTERVAL_SECONDS`, on rebalance
and on stop). Its agents do not run the handlers themselves: they hand each
event to the `KafkaRunner` with acking switched off (`stream.noack()`), and the
runner acks an event only once its outcome is settled. faust's own `take`
buffers ack when the agent moves on, which would commit a batch that a
shutdown interrupted; manual acks keep at-least-once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_kafka

from consumers.kafka.records import Headers, KafkaRecord, header_map
from consumers.kafka.runner import KafkaRunner
from consumers.kafka.topics import retry_topic
from consumers.options import ConsumerOptions

# tansu (and Kafka's group.initial.rebalance.delay) make a join last up to the rebalance
# timeout; the session must outlive it and heartbeats must come several times per session.
MIN_SESSION_SECONDS: Final = 6.0

# How long the broker may hold a fetch that found nothing new. faust fixes it at
# 1,500 ms; tansu holds a fetch that includes an empty partition (a quiet retry
# topic) for the whole wait even when the other partitions have records, which
# made a record wait ~0.7 s on average before its worker saw it.
FETCH_MAX_WAIT_MS: Final = 100

Submit = Callable[[KafkaRecord], Awaitable[None]]


class _QuickFetchThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by the consumer's fetcher when it starts, which happens after this.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _QuickFetchConsumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return _QuickFetchThread(self, loop=self.loop, beacon=self.beacon)


class _QuickFetchTransport(faust_kafka.Transport):
    Consumer = _QuickFetchConsumer


class PipelineApp(faust.App):
    """faust's app with fetches held at most `FETCH_MAX_WAIT_MS` by the broker."""

    def _new_transport(self) -> Any:
        return _QuickFetchTransport(self.conf.broker_consumer, self)


def build_app(options: ConsumerOptions, group: str) -> faust.App:
    """A faust app whose id is the consumer group (the pipeline's queue name)."""
    session = max(MIN_SESSION_SECONDS, 2 * options.kafka_rebalance_timeout_seconds)
    return PipelineApp(
        group,
        broker=f"kafka://{options.kafka_bootstrap_servers}",
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=options.kafka_partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=options.kafka_rebalance_timeout_seconds,
        broker_session_timeout=session,
        broker_heartbeat_interval=session / 6,
        broker_request_timeout=max(40.0, session + 5),
        broker_commit_interval=options.kafka_commit_interval_seconds,
        producer_acks=-1,
        # faust would wait on stop for every fetched event to be acked; ours stay unacked
        # on purpose when a shutdown cuts them off (see `attach_agents` for rebalances).
        stream_wait_empty=False,
    )


def attach_agents(
    app: faust.App, runner: KafkaRunner, options: ConsumerOptions, queue: str
) -> None:
    """One agent on the events topic, one on the pipeline's retry topic."""
    events = app.topic(options.events_topic, key_type=bytes, value_type=bytes)
    retries = app.topic(retry_topic(queue), key_type=bytes, value_type=bytes)
    app.agent(events, name=f"{queue}-events")(_feeder(runner.submit))
    app.agent(retries, name=f"{queue}-retries")(_feeder(runner.submit_when_due))

    async def on_revoked(_: Any, *args: Any, signal: Any, **__: Any) -> None:
        # Settle what is running on the revoked partitions and commit before they move,
        # so the next owner neither loses nor repeats settled records.
        lanes = [(tp.topic, tp.partition) for tp in args[0]]
        await runner.release_lanes(lanes, options.shutdown_grace_seconds)
        await app.consumer.commit()

    async def on_assigned(_: Any, *args: Any, signal: Any, **__: Any) -> None:
        runner.assign_lanes([(tp.topic, tp.partition) for tp in args[0]])

    # faust's annotation of `connect` rejects any coroutine function's inferred type.
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]


def _feeder(submit: Submit) -> Callable[[Any], Awaitable[None]]:
    async def feed(stream: Any) -> None:
        async for event in _events(stream.noack()):
            await submit(to_record(event))

    return feed


async def _events(stream: Any) -> AsyncIterator[Any]:
    async for event in stream.events():
        yield event


def to_record(event: Any) -> KafkaRecord:
    message = event.message
    return KafkaRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",
        headers=header_map(message.headers),
        ack=lambda: _ack(event),
    )


def _ack(event: Any) -> None:
    event.ack()


class FaustSender:
    """`RecordSender` over the app's producer (retry and dead-letter topics)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        await self._app.producer.send_and_wait(
            topic, key, value, partition=None, timestamp=None, headers=headers
        )
