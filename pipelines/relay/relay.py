"""Outbox relay: claim pending rows, publish them, mark them published.

Each cycle runs in one transaction: claim (`FOR UPDATE SKIP LOCKED`), publish,
mark. If the process dies after claiming, the transaction rolls back and the
rows are claimed again by the next cycle or another relay, so no event is lost;
an event published just before a crash may be published twice, which readers
tolerate (every read-model write is idempotent by event id).

The relay sleeps on PostgreSQL `LISTEN outbox` (the insert trigger notifies)
and polls slowly as a fallback for a lost listener connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from contracts import tracing
from contracts.errors import TransientError
from contracts.metrics import (
    OUTBOX_LAG,
    OUTBOX_PARKED,
    OUTBOX_PARKED_EVENTS,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
)
from pipelines.relay.ports import EventPublisher, PublishResult
from pipelines.relay.tracing import PublishSpans
from store import outbox
from store.outbox import OutboxRow, ParkedRow

log = structlog.get_logger("relay")

Connect = Callable[[], Awaitable[Any]]
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class RelayStuck(Exception):
    """A burst run could not publish pending events after repeated attempts."""


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch_size: int = 100
    poll_interval: float = 5.0
    inprocess_retries: int = 3
    inprocess_retry_base: float = 0.05
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    burst_max_failures: int = 5
    max_attempts: int = 10


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one claim-publish-mark cycle did."""

    claimed: int
    published: int
    failed: int
    refused: int = 0
    parked: int = 0


class OutboxRelay:
    """Publishes the outbox; several instances may run side by side."""

    def __init__(
        self,
        pool: Any,
        publisher: EventPublisher,
        options: RelayOptions | None = None,
        *,
        listen: Connect | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._options = options or RelayOptions()
        self._listen_connect = listen
        self._listener: Any = None
        self._wake = asyncio.Event()
        self._ready = False

    @property
    def ready(self) -> bool:
        """The last cycle reached the database and the bus accepted what it was given."""
        return self._ready

    async def publish_pending(self) -> Cycle:
        """Run one cycle over at most `batch_size` pending rows."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await outbox.claim(conn, self._options.batch_size)
            if not rows:
                return Cycle(0, 0, 0)
            result = await self._publish(rows)
            failed = result.failed
            done = [r.id for r in rows if r.id not in failed]
            await outbox.mark_published(conn, done)
            await outbox.record_failure(conn, sorted(result.unsent))
            parked = await outbox.record_refusals(conn, result.refused, self._options.max_attempts)
        for row in rows:
            if row.id not in failed:
                OUTBOX_PUBLISHED.labels(row.event_type).inc()
        log.debug("outbox published", published=len(done), claimed=len(rows))
        if failed:
            OUTBOX_PUBLISH_FAILURES.inc(len(failed))
            log.warning("outbox publish failed", failed=len(failed), claimed=len(rows))
        _report_parked(parked)
        return Cycle(len(rows), len(done), len(failed), len(result.refused), len(parked))

    async def _publish(self, rows: list[OutboxRow]) -> PublishResult:
        if not tracing.active():
            return await self._send(rows)
        spans = PublishSpans.start(rows)
        result: PublishResult | None = None
        try:
            result = await self._send(spans.rows)
        finally:
            spans.end(result)
        return result

    async def _send(self, rows: list[OutboxRow]) -> PublishResult:
        opts = self._options
        base = opts.inprocess_retry_base
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TransientError),
                stop=stop_after_attempt(opts.inprocess_retries + 1),
                wait=wait_exponential_jitter(multiplier=base, max=2.0, jitter=base),
                reraise=True,
            ):
                with attempt:
                    return await self._publisher.publish(rows)
        except TransientError as exc:
            log.warning("event bus unreachable", errorMessage=exc.message)
        return PublishResult(unsent=frozenset(r.id for r in rows))

    async def refresh_lag(self) -> float:
        async with self._pool.acquire() as conn:
            lag = await outbox.lag_seconds(conn)
            parked = await outbox.parked_count(conn)
        OUTBOX_LAG.set(lag)
        OUTBOX_PARKED_EVENTS.set(parked)
        return lag

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> None:
        """Publish until `stop` is set (or, with `burst`, until nothing is pending)."""
        failures = outages = 0
        try:
            while not stop.is_set():
                await self._ensure_listener()
                self._wake.clear()
                cycle = await self._safe_cycle()
                failures = failures + 1 if cycle.failed else 0
                # Refused rows end parked, so only outages may make a burst run give up.
                outages = outages + 1 if cycle.failed > cycle.refused else 0
                if failures:
                    self._give_up_if_burst(burst, outages)
                    await self._pause(stop, self._backoff(failures), wake=not outages)
                elif cycle.claimed < self._options.batch_size:
                    if burst and await self._drained():
                        return
                    await self._pause(stop, self._options.poll_interval, wake=True)
        finally:
            await self._close_listener()

    async def _safe_cycle(self) -> Cycle:
        try:
            cycle = await self.publish_pending()
            await self.refresh_lag()
        except _DB_ERRORS as exc:
            log.warning("outbox database unavailable", errorMessage=str(exc))
            self._ready = False
            return Cycle(0, 0, 1)
        # A few refused rows do not make the relay unready; a bus refusing everything does.
        self._ready = not cycle.failed or cycle.published > 0
        return cycle

    def _give_up_if_burst(self, burst: bool, outages: int) -> None:
        if burst and outages >= self._options.burst_max_failures:
            raise RelayStuck(f"Could not publish pending events after {outages} attempts.")

    async def _drained(self) -> bool:
        async with self._pool.acquire() as conn:
            return await outbox.pending_count(conn) == 0

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._options.backoff_max, self._options.backoff_base * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _pause(self, stop: asyncio.Event, seconds: float, *, wake: bool = False) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _ensure_listener(self) -> None:
        if self._listen_connect is None:
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await self._listen_connect()
            await self._listener.add_listener(outbox.NOTIFY_CHANNEL, self._notified)
        except _DB_ERRORS as exc:
            # The fallback poll keeps events moving until the next attempt.
            log.warning("outbox listener unavailable", errorMessage=str(exc))
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None


def _report_parked(parked: list[ParkedRow]) -> None:
    for row in parked:
        OUTBOX_PARKED.labels(row.event_type).inc()
        # An operator must look: the event is out of the pending set until requeued.
        log.error(
            "outbox event parked",
            eventId=str(row.event_id),
            eventType=row.event_type,
            attempts=row.attempts,
            errorMessage=row.last_error,
        )
