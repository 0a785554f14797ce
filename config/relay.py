"""Composition root of `socialpipe relay`."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from config.clients import open_sns
from config.health import serving
from config.logging import configure_logging
from config.settings import Settings
from config.signals import stop_on_signals
from config.startup import (
    MissingResource,
    aws_address,
    aws_dependency,
    check_dependencies,
    report,
)
from config.tracing import start_tracing
from pipelines.relay.kafka import KafkaPublisher, open_producer
from pipelines.relay.ports import EventPublisher
from pipelines.relay.relay import OutboxRelay, RelayOptions
from pipelines.relay.sns import SnsPublisher, find_topic
from store.db import create_pool


async def build_relay(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    options: RelayOptions | None = None,
    publisher: EventPublisher | None = None,
    pool: Any = None,
) -> OutboxRelay:
    """Build the relay with its pool, listener connection and SNS (or Kafka) publisher."""
    if pool is None:
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        stack.push_async_callback(pool.close)
    if publisher is None and settings.event_transport == "kafka":
        producer = await open_producer(settings.kafka_bootstrap_servers)
        stack.push_async_callback(producer.stop)
        publisher = KafkaPublisher(producer, settings.events_topic)
    if publisher is None:
        sns = await open_sns(stack, settings, pool=20)
        publisher = SnsPublisher(sns, await _topic_arn(sns, settings))
    defaults = RelayOptions(
        inprocess_retries=settings.inprocess_retries,
        inprocess_retry_base=settings.inprocess_retry_base_seconds,
        max_attempts=settings.outbox_max_attempts,
    )

    async def listen() -> Any:
        return await asyncpg.connect(settings.database_url)

    return OutboxRelay(pool, publisher, options or defaults, listen=listen)


async def _topic_arn(sns: Any, settings: Settings) -> str:
    """The events topic's ARN; a missing topic stops the start with one sentence."""
    arn = await find_topic(sns, settings.events_topic)
    if arn is None:
        raise report(
            MissingResource(
                f"the SNS topic {settings.events_topic}",
                aws_address(settings),
                "`socialpipe queues create` creates it",
            )
        )
    return arn


async def run_relay(
    settings: Settings,
    *,
    burst: bool = False,
    options: RelayOptions | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the relay until SIGTERM/SIGINT or `stop` (or, with `burst`, until drained).

    `/healthz`, `/readyz` and `/metrics` are served on `METRICS_PORT` meanwhile;
    ready means the last cycle reached both the database and the event bus.
    """
    configure_logging("relay", settings.log_level)
    start_tracing(settings, "relay")
    stop = stop or asyncio.Event()
    await check_dependencies(settings, "relay")
    if settings.event_transport == "kafka":
        # As a worker does: the topic is made by `socialpipe queues create`, not here.
        # Imported here: the Kafka client libraries cost an SQS relay its start-up time.
        from config.kafka_worker import check_topics

        await check_topics(settings)
    async with AsyncExitStack() as stack:
        # Kafka's producer names itself when unreachable; SNS is named here.
        with aws_dependency("SNS", settings):
            relay = await build_relay(stack, settings, options=options)
        with stop_on_signals(stop.set):
            async with serving(
                settings.metrics_port,
                host=settings.metrics_host,
                ready=lambda: relay.ready,
                commit=settings.build_commit,
            ):
                await relay.run(stop, burst=burst)
