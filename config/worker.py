"""Composition root of a worker process: `socialpipe worker feed|search|notifications`.

`PIPELINE_BUILDERS` maps each pipeline to the function that builds its handler;
`run_worker` wraps that handler in the consumer of the configured transport (SQS
here, Kafka in `config.kafka_worker`) and serves health until a signal stops it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final, Protocol

import structlog

from config.clients import open_sqs
from config.feed import build_feed_handler
from config.health import serving
from config.logging import configure_logging
from config.notifications import build_notifications_handler
from config.search import build_search_handler
from config.settings import Settings
from config.signals import stop_on_signals
from config.startup import aws_dependency, check_dependencies
from config.tracing import start_tracing
from consumers.options import ConsumerOptions
from consumers.runtime import SqsConsumer
from consumers.topology import queue_url
from contracts.keys import dlq_name
from contracts.outcomes import EventHandler
from dlq.depth import refreshing_dlq_depth

# Called as `builder(stack, settings, **overrides)`; each pipeline's overrides differ.
HandlerBuilder = Callable[..., Awaitable[EventHandler]]

PIPELINE_BUILDERS: Final[Mapping[str, HandlerBuilder]] = {
    "feed": build_feed_handler,
    "search": build_search_handler,
    "notifications": build_notifications_handler,
}
PIPELINES: Final = tuple(PIPELINE_BUILDERS)
# Connections beyond the handlers' own: one per poller, batched deletes, the heartbeat.
SPARE_CONNECTIONS: Final = 3

log = structlog.get_logger("config.worker")


class PipelineUnavailable(Exception):
    """The pipeline named is not one this build has."""


class Consumer(Protocol):
    """What `run_worker` drives: `SqsConsumer` or `KafkaConsumer`."""

    @property
    def ready(self) -> bool: ...

    def request_stop(self) -> None: ...

    async def run(self, *, burst: bool = False) -> None: ...


def consumer_options(settings: Settings) -> ConsumerOptions:
    """The consumer runtimes' options, taken from the process settings."""
    return ConsumerOptions(
        pollers=settings.pollers,
        receive_wait_seconds=settings.receive_wait_seconds,
        visibility_timeout=settings.visibility_timeout,
        max_receive_count=settings.max_receive_count,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        inprocess_retries=settings.inprocess_retries,
        inprocess_retry_base_seconds=settings.inprocess_retry_base_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        events_topic=settings.events_topic,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        kafka_partitions=settings.kafka_partitions,
        kafka_rebalance_timeout_seconds=settings.kafka_rebalance_timeout_seconds,
        kafka_commit_interval_seconds=settings.kafka_commit_interval_seconds,
    )


def pipeline_queue(settings: Settings, pipeline: str) -> str:
    queues = {
        "feed": settings.feed_queue,
        "search": settings.search_queue,
        "notifications": settings.notifications_queue,
    }
    try:
        return queues[pipeline]
    except KeyError:
        raise PipelineUnavailable(f"Unknown pipeline {pipeline!r}.") from None


def default_concurrency(handler: EventHandler) -> int:
    """Enough messages in flight to keep two full handler batches busy."""
    return max(16, 2 * max(1, handler.max_batch))


async def build_handler(
    stack: AsyncExitStack,
    settings: Settings,
    pipeline: str,
    overrides: Mapping[str, Any] | None = None,
) -> EventHandler:
    """Build `pipeline`'s handler with its builder from `PIPELINE_BUILDERS`."""
    try:
        builder = PIPELINE_BUILDERS[pipeline]
    except KeyError:
        raise PipelineUnavailable(
            f"The {pipeline} pipeline is not available in this build."
        ) from None
    return await builder(stack, settings, **dict(overrides or {}))


async def _sqs_consumer(
    stack: AsyncExitStack,
    settings: Settings,
    queue: str,
    handler: EventHandler,
    in_flight: int,
) -> SqsConsumer:
    """The queue's consumer, its SQS client and the DLQ depth gauge, closed with `stack`."""
    with aws_dependency("SQS", settings):
        sqs = await open_sqs(stack, settings, pool=settings.pollers + SPARE_CONNECTIONS + in_flight)
        dlq_url = await queue_url(sqs, dlq_name(queue))
        await stack.enter_async_context(
            refreshing_dlq_depth(sqs, dlq_url=dlq_url, dlq=dlq_name(queue))
        )
        return SqsConsumer(
            sqs,
            queue_name=queue,
            queue_url=await queue_url(sqs, queue),
            dlq_url=dlq_url,
            handler=handler,
            options=consumer_options(settings),
            concurrency=in_flight,
        )


async def _consumer(
    stack: AsyncExitStack, settings: Settings, queue: str, handler: EventHandler, in_flight: int
) -> Consumer:
    if settings.event_transport != "kafka":
        return await _sqs_consumer(stack, settings, queue, handler, in_flight)
    # faust takes about half a second to import, so only a Kafka worker loads it.
    from config.kafka_worker import kafka_consumer

    options = consumer_options(settings)
    return kafka_consumer(settings, options, queue=queue, handler=handler, in_flight=in_flight)


async def _check_transport(settings: Settings) -> None:
    """Fail before building anything when the Kafka topics are missing (SQS fails on lookup)."""
    if settings.event_transport == "kafka":
        from config.kafka_worker import check_topics  # see `_consumer`

        await check_topics(settings)


async def run_worker(
    settings: Settings,
    pipeline: str,
    *,
    burst: bool,
    concurrency: int | None,
    handler_overrides: Mapping[str, Any] | None = None,
    handler: EventHandler | None = None,
) -> int:
    """Run one pipeline's consumer until SIGTERM/SIGINT (or drained, with `burst`).

    `handler_overrides` are passed to the pipeline's builder (tests hand in
    clients); `handler` skips the builder altogether. Returns the exit code.
    """
    configure_logging(f"worker-{pipeline}", settings.log_level)
    start_tracing(settings, f"worker-{pipeline}")
    queue = pipeline_queue(settings, pipeline)
    transport = settings.event_transport
    await _check_transport(settings)
    async with AsyncExitStack() as stack:
        if handler is None:
            await check_dependencies(settings, pipeline)
            handler = await build_handler(stack, settings, pipeline, handler_overrides)
        in_flight = concurrency or default_concurrency(handler)
        consumer = await _consumer(stack, settings, queue, handler, in_flight)
        log.info(
            "worker starting", queue=queue, transport=transport, concurrency=in_flight, burst=burst
        )
        with stop_on_signals(consumer.request_stop):
            async with serving(
                settings.metrics_port,
                host=settings.metrics_host,
                ready=lambda: consumer.ready,
                commit=settings.build_commit,
            ):
                await consumer.run(burst=burst)
        log.info("worker stopped", queue=queue, transport=transport)
    return 0
