"""`KafkaConsumer`: one pipeline's faust app, runner and lag probe, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Final

import structlog

from consumers.kafka.app import FaustSender, attach_agents, build_app
from consumers.kafka.lag import LagProbe
from consumers.kafka.runner import KafkaRunner
from consumers.kafka.topics import retry_topic
from consumers.options import ConsumerOptions
from contracts.outcomes import EventHandler

LAG_REFRESH_SECONDS: Final = 5.0
BURST_CHECK_SECONDS: Final = 0.5

log = structlog.get_logger("consumers.kafka")


class KafkaConsumer:
    """Drives one `EventHandler` from the events and retry topics as consumer group `queue_name`."""

    def __init__(
        self,
        options: ConsumerOptions,
        *,
        queue_name: str,
        event_types: Collection[str],
        handler: EventHandler,
        concurrency: int,
    ) -> None:
        self._options = options
        self._queue = queue_name
        self._app = build_app(options, queue_name)
        self._runner = KafkaRunner(
            handler,
            options=options,
            queue_name=queue_name,
            event_types=event_types,
            sender=FaustSender(self._app),
            concurrency=concurrency,
        )
        attach_agents(self._app, self._runner, options, queue_name)
        self._probe = LagProbe(
            options.kafka_bootstrap_servers,
            queue_name,
            [options.events_topic, retry_topic(queue_name)],
        )
        self._stop = asyncio.Event()
        self._started = False

    @property
    def ready(self) -> bool:
        """Member of the group with partitions, and the handler's dependencies answer."""
        return (
            self._started
            and not self._stop.is_set()
            and not self._runner.waiting_on_handler
            and bool(self._app.consumer.assignment())
        )

    @property
    def settled(self) -> int:
        """Records settled so far (handled, retried or dead-lettered)."""
        return self._runner.settled

    def request_stop(self) -> None:
        """Stop taking records and drain; safe from a signal handler, safe to repeat."""
        self._stop.set()

    async def run(self, *, burst: bool = False) -> None:
        """Consume until `request_stop()` (or, with `burst`, until the group has no lag)."""
        await self._probe.start()
        dispatcher = asyncio.create_task(self._runner.run(), name=f"dispatch-{self._queue}")
        try:
            await self._app.start()
            self._started = True
            await self._watch(burst)
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
            await self._runner.drain(self._options.shutdown_grace_seconds)
            # Stopping the app commits the offsets acked so far; unsettled ones come back.
            await self._app.stop()
            await self._probe.close()
            self._started = False

    async def _watch(self, burst: bool) -> None:
        interval = BURST_CHECK_SECONDS if burst else LAG_REFRESH_SECONDS
        while not self._stop.is_set():
            lag = await self._refresh_lag()
            if burst and lag == 0 and self._runner.idle and self._app.consumer.assignment():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    async def _refresh_lag(self) -> int | None:
        try:
            return await self._probe.refresh()
        except Exception as exc:  # a metrics hiccup must not stop consumption
            log.warning("reading consumer lag failed", queue=self._queue, errorMessage=str(exc))
            return None
