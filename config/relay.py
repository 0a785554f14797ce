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
from config.startup import aws_dependency, check_dependencies
from pipelines.relay.kafka import KafkaPublisher, open_producer
from pipelines.relay.ports import EventPublisher
from pipelines.relay.relay import OutboxRelay, RelayOptions
from pipelines.relay.sns import SnsPublisher
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
        # CreateTopic is idempotent and the cheapest way to learn the ARN.
        topic_arn = (await sns.create_topic(Name=settings.events_topic))["TopicArn"]
        publisher = SnsPublisher(sns, topic_arn)
    defaults = RelayOptions(
        inprocess_retries=settings.inprocess_retries,
        inprocess_retry_base=settings.inprocess_retry_base_seconds,
        max_attempts=settings.outbox_max_attempts,
    )

    async def listen() -> Any:
        return await asyncpg.connect(settings.database_url)

    return OutboxRelay(pool, publisher, options or defaults, listen=listen)


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
    stop = stop or asyncio.Event()
    await check_dependencies(settings, "relay")
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
