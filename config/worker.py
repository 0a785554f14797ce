"""Composition root of a worker process: `socialpipe worker feed|search|notifications`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

import structlog

from config.clients import open_sqs
from config.health import serving
from config.logging import configure_logging
from config.settings import Settings
from config.signals import stop_on_signals
from config.startup import aws_dependency, check_dependencies
from consumers.runtime import SqsConsumer
from consumers.topology import queue_url
from contracts.keys import dlq_name
from contracts.outcomes import EventHandler
from dlq.depth import refreshing_dlq_depth

PIPELINES: Final = ("feed", "search", "notifications")
# Connections beyond the handlers' own: one per poller, batched deletes, the heartbeat.
SPARE_CONNECTIONS: Final = 3

log = structlog.get_logger("config.worker")


class PipelineUnavailable(Exception):
    """The pipeline's composition module is not part of this build."""


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
    """Import `config.<pipeline>` lazily and call its `build_<pipeline>_handler`."""
    module_name = f"config.{pipeline}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        detail = "" if exc.name == module_name else f" (missing module {exc.name})"
        raise PipelineUnavailable(
            f"The {pipeline} pipeline is not available in this build{detail}."
        ) from None
    builder = getattr(module, f"build_{pipeline}_handler", None)
    if builder is None:
        raise PipelineUnavailable(f"The {pipeline} pipeline is not available in this build.")
    handler: EventHandler = await builder(stack, settings, **dict(overrides or {}))
    return handler


async def _sqs_consumer(
    stack: AsyncExitStack,
    settings: Settings,
    queue: str,
    handler: EventHandler,
    concurrency: int | None,
) -> SqsConsumer:
    """The queue's consumer, its SQS client and the DLQ depth gauge, closed with `stack`."""
    in_flight = concurrency or default_concurrency(handler)
    sqs = await open_sqs(stack, settings, pool=settings.pollers + SPARE_CONNECTIONS + in_flight)
    dlq_url = await queue_url(sqs, dlq_name(queue))
    await stack.enter_async_context(refreshing_dlq_depth(sqs, dlq_url=dlq_url, dlq=dlq_name(queue)))
    return SqsConsumer(
        sqs,
        queue_name=queue,
        queue_url=await queue_url(sqs, queue),
        dlq_url=dlq_url,
        handler=handler,
        settings=settings,
        concurrency=in_flight,
    )


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
    if settings.event_transport == "kafka":
        # Imported here so an SQS worker never loads faust.
        from consumers.kafka.worker import run_kafka_worker

        return await run_kafka_worker(
            settings,
            pipeline,
            burst=burst,
            concurrency=concurrency,
            handler_overrides=handler_overrides,
            handler=handler,
        )
    configure_logging(f"worker-{pipeline}", settings.log_level)
    queue = pipeline_queue(settings, pipeline)
    async with AsyncExitStack() as stack:
        if handler is None:
            await check_dependencies(settings, pipeline)
            handler = await build_handler(stack, settings, pipeline, handler_overrides)
        with aws_dependency("SQS", settings):
            consumer = await _sqs_consumer(stack, settings, queue, handler, concurrency)
        log.info("worker starting", queue=queue, concurrency=consumer.concurrency, burst=burst)
        with stop_on_signals(consumer.request_stop):
            async with serving(
                settings.metrics_port, host=settings.metrics_host, ready=lambda: consumer.ready
            ):
                await consumer.run(burst=burst)
        log.info("worker stopped", queue=queue)
    return 0
