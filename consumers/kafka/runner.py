"""Running records through a handler and settling each one before its offset is committed.

Records arrive per partition from the faust agents. Each partition is a lane:
its records are handled in offset order, one chunk at a time, so one key's
events never overtake each other; chunks coalesce records of every idle lane
up to `handler.max_batch`, and at most `concurrency` chunks run at once.

A record's offset is acked only once its outcome is settled: handled (ack),
re-published to the retry topic with its next attempt number and due time
(transient failure, after the in-process retries), or published to the
dead-letter topic with the reason in its headers (permanent failure, or the
last allowed attempt). faust commits the highest contiguous acked offset, so
a crash at any point re-delivers whatever was not settled: at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol

import structlog

from consumers.backoff import visibility_backoff
from consumers.classify import classify
from consumers.delivery import as_delivered
from consumers.failure_log import DEAD_LETTER, RETRY, log_failure
from consumers.gate import DependencyGate
from consumers.invoke import HandlerInvoker
from consumers.kafka.records import Headers, KafkaRecord, dead_letter_headers, retry_headers
from consumers.kafka.topics import dlq_topic, retry_topic
from consumers.options import ConsumerOptions
from consumers.settle import OUTAGE_RETRY_CAP_SECONDS
from consumers.tracing import received
from contracts.errors import PermanentError
from contracts.events import Envelope, decode_body
from contracts.metrics import (
    IN_FLIGHT,
    MESSAGES_ACKED,
    MESSAGES_DEAD_LETTERED,
    MESSAGES_RECEIVED,
    MESSAGES_RETRIED,
)
from contracts.outcomes import Ack, DeadLetter, EventHandler, Failure, Outcome, Retry

SEND_RETRY_PAUSE: Final = (0.2, 5.0)

log = structlog.get_logger("consumers.kafka")

Lane = tuple[str, int]


class RecordSender(Protocol):
    """Publishes one record and returns once the broker has it."""

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None: ...


class _Abandoned(Exception):
    """A settlement send kept failing while stopping: the record stays unacked."""


class KafkaRunner:
    """Drives one `EventHandler` with records from one consumer group's partitions."""

    def __init__(
        self,
        handler: EventHandler,
        *,
        options: ConsumerOptions,
        queue_name: str,
        event_types: Collection[str],
        sender: RecordSender,
        concurrency: int,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handler = handler
        self._options = options
        self._queue = queue_name
        self._event_types = frozenset(event_types)
        self._sender = sender
        self.gate = DependencyGate(handler.dependencies, queue=queue_name)
        self._invoker = HandlerInvoker(
            handler,
            queue_name=queue_name,
            gate=self.gate,
            attempts=options.inprocess_retries + 1,
            retry_base=options.inprocess_retry_base_seconds,
        )
        self._max_batch = max(1, handler.max_batch)
        self._slots = asyncio.Semaphore(concurrency)
        # Enough buffered records to fill every slot with a full batch, twice.
        self._room_size = 2 * concurrency * self._max_batch
        self._room = asyncio.Semaphore(self._room_size)
        self._lanes: dict[Lane, deque[KafkaRecord]] = {}
        self._busy: set[Lane] = set()
        # Revoked in a rebalance: records still arriving from them belong to the next owner.
        self._released: set[Lane] = set()
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._paused = 0
        self.settled = 0

    @property
    def idle(self) -> bool:
        """Nothing buffered and nothing running."""
        return not self._running and not any(self._lanes.values())

    @property
    def waiting_on_handler(self) -> bool:
        """Paused for a dependency that is down, or for the handler's own guard."""
        return self._paused > 0 or not self.gate.ready

    # -- intake --------------------------------------------------------------------

    async def submit(self, record: KafkaRecord) -> None:
        """Queue a record for its lane; waits while the buffer is full."""
        MESSAGES_RECEIVED.labels(self._queue).inc()
        event_type = record.headers.get("eventType")
        if event_type is not None and event_type not in self._event_types:
            record.ack()  # another pipeline's event: nothing to do, nothing to lose
            return
        await self._room.acquire()
        lane = (record.topic, record.partition)
        if self._stopping.is_set() or lane in self._released:
            # Left unacked: the partition's next owner handles it.
            self._room.release()
            return
        self._lanes.setdefault(lane, deque()).append(record)
        self._wake.set()

    async def submit_when_due(self, record: KafkaRecord) -> None:
        """Queue a retried record once its `retryAt` has passed (or return early on stop)."""
        delay = record.retry_at - time.time()
        if delay > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return  # stopping: left unacked, the next owner retries it
            except TimeoutError:
                pass
        await self.submit(record)

    # -- dispatching ---------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch chunks until cancelled."""
        self.gate.start()
        try:
            await self._dispatch()
        finally:
            await self.gate.close()

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                chunk, lanes = await self._next_chunk()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._process(chunk, lanes))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_chunk(self) -> tuple[list[KafkaRecord], set[Lane]]:
        while True:
            self._paused += 1
            try:
                await self.gate.wait_open()
                await self._handler.wait_ready()
            finally:
                self._paused -= 1
            chunk, lanes = self._take()
            if chunk:
                return chunk, lanes
            self._wake.clear()
            await self._wake.wait()

    def _take(self) -> tuple[list[KafkaRecord], set[Lane]]:
        """Records from the heads of idle lanes, up to one handler batch; marks those lanes busy."""
        chunk: list[KafkaRecord] = []
        lanes: set[Lane] = set()
        for lane, queue in self._lanes.items():
            if lane in self._busy or not queue:
                continue
            lanes.add(lane)
            while queue and len(chunk) < self._max_batch:
                chunk.append(queue.popleft())
            if len(chunk) >= self._max_batch:
                break
        self._busy |= lanes
        return chunk, lanes

    async def _process(self, chunk: Sequence[KafkaRecord], lanes: set[Lane]) -> None:
        IN_FLIGHT.labels(self._queue).inc(len(chunk))
        pending = list(chunk)
        try:
            decoded = await self._decode(pending)
            if decoded:
                with received(self._queue, decoded):
                    outcomes = await self._invoker.run([env for _, env in decoded])
                for (record, _), outcome in zip(decoded, outcomes, strict=True):
                    await self._settle(record, outcome)
                    pending.remove(record)
        except _Abandoned:
            pass
        except Exception as exc:
            # A bug here must not wedge the partition: what is left goes to the retry topic.
            log.exception("processing a chunk failed", queue=self._queue)
            await self._settle_all(pending, classify(exc))
        finally:
            IN_FLIGHT.labels(self._queue).dec(len(chunk))
            self._busy -= lanes
            for _ in chunk:
                self._room.release()
            self._slots.release()
            self._wake.set()

    async def _decode(self, pending: list[KafkaRecord]) -> list[tuple[KafkaRecord, Envelope]]:
        decoded: list[tuple[KafkaRecord, Envelope]] = []
        for record in list(pending):
            try:
                envelope = decode_body(record.value)
            except PermanentError as exc:
                await self._settle(record, DeadLetter(exc.error_type, exc.message))
                pending.remove(record)
                continue
            if envelope.event_type not in self._event_types:
                await self._settle(record, None)
                pending.remove(record)
                continue
            delivered = as_delivered(envelope, attempt=record.attempts, attributes=record.headers)
            decoded.append((record, delivered))
        return decoded

    async def _settle_all(self, records: Sequence[KafkaRecord], failure: Failure) -> None:
        for record in records:
            try:
                await self._settle(record, failure)
            except _Abandoned:
                continue

    # -- settling ------------------------------------------------------------------

    async def _settle(self, record: KafkaRecord, outcome: Outcome | None) -> None:
        # Shielded: a shutdown deadline must not cut a dead-letter send off from its ack.
        await asyncio.shield(self._settle_now(record, outcome))

    async def _settle_now(self, record: KafkaRecord, outcome: Outcome | None) -> None:
        last = record.attempts >= self._options.max_receive_count
        if isinstance(outcome, DeadLetter) or (
            isinstance(outcome, Retry) and last and outcome.outage is None
        ):
            await self._dead_letter(record, outcome)
        elif isinstance(outcome, Retry):
            await self._retry_later(record, outcome)
        elif isinstance(outcome, Ack):
            MESSAGES_ACKED.labels(self._queue).inc()
        record.ack()
        self.settled += 1

    async def _dead_letter(self, record: KafkaRecord, failure: Failure) -> None:
        headers = dead_letter_headers(
            record, failure, source_queue=self._queue, failed_at=datetime.now(UTC)
        )
        await self._deliver(dlq_topic(self._queue), record, headers)
        MESSAGES_DEAD_LETTERED.labels(self._queue, failure.error_type).inc()
        self._log(DEAD_LETTER, record, failure, "message dead-lettered")

    async def _retry_later(self, record: KafkaRecord, failure: Retry) -> None:
        delay = self._retry_delay(record, failure)
        # An outage is not the record's fault: it keeps its attempt number, so it
        # can never reach the dead-letter topic for it.
        attempts = record.attempts if failure.outage is not None else record.attempts + 1
        headers = retry_headers(record, failure, retry_at=time.time() + delay, attempts=attempts)
        await self._deliver(retry_topic(self._queue), record, headers)
        MESSAGES_RETRIED.labels(self._queue, failure.error_type).inc()
        self._log(RETRY, record, failure, "message will be retried", retryInSeconds=delay)

    def _retry_delay(self, record: KafkaRecord, failure: Retry) -> float:
        if failure.delay is not None:
            return max(0.0, failure.delay)
        cap = self._options.retry_max_seconds
        if failure.outage is not None:
            cap = min(cap, OUTAGE_RETRY_CAP_SECONDS)
        return float(
            visibility_backoff(record.attempts, base=self._options.retry_base_seconds, cap=cap)
        )

    async def _deliver(self, topic: str, record: KafkaRecord, headers: Headers) -> None:
        """Send until the broker has it; give up (record unacked) only when stopping."""
        failures = 0
        while True:
            try:
                await self._sender.send(topic, record.key, record.value, headers)
                return
            except Exception as exc:
                failures += 1
                if self._stopping.is_set():
                    log.warning("settlement send abandoned at shutdown", topic=topic)
                    raise _Abandoned() from exc
                low, high = SEND_RETRY_PAUSE
                pause = min(high, low * 2 ** (failures - 1))
                log.warning("settlement send failed", topic=topic, errorMessage=str(exc))
                await asyncio.sleep(pause)

    def _log(
        self, level: int, record: KafkaRecord, failure: Failure, event: str, **extra: object
    ) -> None:
        log_failure(
            level,
            event,
            failure,
            correlation_id=record.correlation_id or record.record_id,
            queue=self._queue,
            message_id=record.record_id,
            attempts=record.attempts,
            body=record.body,
            **extra,
        )

    # -- rebalancing ---------------------------------------------------------------

    async def release_lanes(self, lanes: Collection[Lane], grace: float) -> None:
        """Hand partitions back: drop their unstarted records (unacked), let running ones settle.

        Called while the group rebalances, before offsets are committed, so the next
        owner starts right after the last settled record and redoes nothing.
        """
        released = set(lanes)
        self._released |= released
        for lane in released:
            dropped = self._lanes.pop(lane, None) or ()
            for _ in dropped:
                self._room.release()
        deadline = asyncio.get_running_loop().time() + grace
        while self._busy & released and asyncio.get_running_loop().time() < deadline:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)

    def assign_lanes(self, lanes: Collection[Lane]) -> None:
        """Partitions (re)assigned to this member: accept their records again."""
        self._released -= set(lanes)

    # -- stopping ------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Start nothing new; finish running chunks within `grace`, cancel the rest.

        Buffered records that never started stay unacked, so their offsets are
        not committed and the partition's next owner handles them.
        """
        self._stopping.set()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("cancelled work that outlived the shutdown grace", tasks=len(late))
                await asyncio.gather(*late, return_exceptions=True)
        self._lanes.clear()
        # Feeders blocked on a full buffer must return, or faust cannot stop its agents.
        for _ in range(self._room_size):
            self._room.release()
