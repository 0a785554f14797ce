"""Composition root of a worker on the Kafka transport (`EVENT_TRANSPORT=kafka`).

`config.worker.run_worker` hands over here, so `socialpipe worker feed|search|
notifications` builds the same handler for either transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import structlog

from config.health import serving
from config.logging import configure_logging
from config.settings import Settings
from config.signals import stop_on_signals
from config.startup import check_dependencies
from config.worker import build_handler, default_concurrency, pipeline_queue
from consumers.kafka.consumer import KafkaConsumer
from consumers.kafka.topics import KafkaUnavailable, declared_topics, open_admin
from contracts.outcomes import EventHandler

log = structlog.get_logger("consumers.kafka.worker")


async def check_topics(settings: Settings, queue: str) -> None:
    """Fail with one sentence when the broker is down or `queues create` never ran."""
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


async def run_kafka_worker(
    settings: Settings,
    pipeline: str,
    *,
    burst: bool,
    concurrency: int | None,
    handler_overrides: Mapping[str, Any] | None = None,
    handler: EventHandler | None = None,
) -> int:
    """Run one pipeline as a consumer group until SIGTERM/SIGINT (or drained, with `burst`)."""
    configure_logging(f"worker-{pipeline}", settings.log_level)
    queue = pipeline_queue(settings, pipeline)
    await check_topics(settings, queue)
    async with AsyncExitStack() as stack:
        if handler is None:
            await check_dependencies(settings, pipeline)
            handler = await build_handler(stack, settings, pipeline, handler_overrides)
        in_flight = concurrency or default_concurrency(handler)
        # `--concurrency` counts events in flight; the runner counts handler chunks.
        chunks = max(1, in_flight // max(1, handler.max_batch))
        consumer = KafkaConsumer(settings, queue_name=queue, handler=handler, concurrency=chunks)
        log.info("worker starting", queue=queue, transport="kafka", burst=burst)
        with stop_on_signals(consumer.request_stop):
            async with serving(
                settings.metrics_port, host=settings.metrics_host, ready=lambda: consumer.ready
            ):
                await consumer.run(burst=burst)
        log.info("worker stopped", queue=queue, transport="kafka")
    return 0
