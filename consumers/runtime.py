"""The SQS consumer runtime (docs/failure-policy.md).

Pollers long-poll the queue and put messages on a local buffer; a dispatcher
groups them into chunks of `handler.max_batch` and runs each chunk in its own
task. Two bounds keep memory and visibility use flat: a semaphore of
`concurrency` permits holds each message from the start of its handling until
its outcome is settled, and the buffer takes at most one full receive per
poller, so pollers only ask for what there is room for while runners work on
the previous batch. Each message ends as exactly one outcome: ack (batched
delete), retry (visibility backoff), requeue (an outage on its last receive) or
dead-letter. Before each receive a poller waits on the dependency gate, so a
worker whose database or Redis is down takes nothing and reports not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import structlog

from consumers.deleter import BatchDeleter
from consumers.delivery import as_delivered
from consumers.gate import DependencyGate
from consumers.heartbeat import Heartbeat
from consumers.invoke import HandlerInvoker
from consumers.messages import ReceivedMessage
from consumers.options import ConsumerOptions
from consumers.settle import SettleOptions, Settler
from consumers.tracing import received
from contracts.errors import PermanentError
from contracts.events import Envelope, decode_body
from contracts.metrics import IN_FLIGHT, MESSAGES_RECEIVED
from contracts.outcomes import DeadLetter, EventHandler, Outcome

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

RECEIVE_MAX: Final = 10
RECEIVE_ERROR_PAUSE: Final = (0.5, 10.0)

log = structlog.get_logger("consumers.runtime")


class SqsConsumer:
    """Drives one `EventHandler` from one SQS queue until stopped (or drained in burst mode)."""

    def __init__(
        self,
        sqs: SQSClient,
        *,
        queue_name: str,
        queue_url: str,
        dlq_url: str,
        handler: EventHandler,
        options: ConsumerOptions,
        concurrency: int,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sqs = sqs
        self._queue_name = queue_name
        self._queue_url = queue_url
        self._handler = handler
        self._options = options
        max_batch = max(1, handler.max_batch)
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # Chunks run at once: while they all work, the buffer fills, so the next
        # chunk is larger and a busy worker pays its per-batch costs less often.
        self._chunks = asyncio.Semaphore(max(1, concurrency // max_batch))
        self._prefetch = asyncio.Semaphore(max(RECEIVE_MAX * options.pollers, max_batch))
        self._buffer: asyncio.Queue[ReceivedMessage] = asyncio.Queue()
        self._unsettled: dict[str, ReceivedMessage] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._polling = False
        self._paused = 0
        self._deleter = BatchDeleter(sqs, queue_url=queue_url, queue_name=queue_name)
        self._heartbeat = Heartbeat(
            sqs, queue_url=queue_url, visibility_timeout=options.visibility_timeout
        )
        self._settler = Settler(
            sqs,
            queue_name=queue_name,
            queue_url=queue_url,
            dlq_url=dlq_url,
            options=SettleOptions(
                max_receive_count=options.max_receive_count,
                retry_base_seconds=options.retry_base_seconds,
                retry_max_seconds=options.retry_max_seconds,
            ),
            deleter=self._deleter,
        )
        self.gate = DependencyGate(handler.dependencies, queue=queue_name)
        self._invoker = HandlerInvoker(
            handler,
            queue_name=queue_name,
            gate=self.gate,
            attempts=options.inprocess_retries + 1,
            retry_base=options.inprocess_retry_base_seconds,
        )

    @property
    def ready(self) -> bool:
        """Polling, the last receive succeeded and the handler's dependencies answer."""
        return self._polling and self._paused == 0 and self.gate.ready and not self._stop.is_set()

    @property
    def heartbeat_extensions(self) -> int:
        return self._heartbeat.extensions

    def request_stop(self) -> None:
        """Stop polling at once and drain; safe from a signal handler, safe to repeat."""
        self._stop.set()

    async def run(self, *, burst: bool = False) -> None:
        """Consume until `request_stop()` (or, with `burst`, until the queue is drained)."""
        self._deleter.start()
        self._heartbeat.start()
        self.gate.start()
        pollers = [
            asyncio.create_task(self._poll(burst), name=f"poller-{self._queue_name}-{i}")
            for i in range(self._options.pollers)
        ]
        dispatcher = asyncio.create_task(self._dispatch(), name=f"dispatch-{self._queue_name}")
        try:
            await self._stop.wait()
        finally:
            await self._shutdown([*pollers, dispatcher])

    # -- receiving -----------------------------------------------------------------

    async def _poll(self, burst: bool) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                await self._poll_once(burst)
                failures = 0
            except Exception as exc:  # a poller survives endpoint and dependency trouble
                self._polling = False
                failures += 1
                await self._pause_after_error(exc, failures)

    async def _poll_once(self, burst: bool) -> None:
        await self._wait_ready()
        reserved = await self._reserve()
        try:
            raw = await self._receive(reserved)
        except BaseException:
            self._release_prefetch(reserved)
            raise
        self._release_prefetch(reserved - len(raw))
        messages = [ReceivedMessage.from_sqs(r) for r in raw]
        if messages and not self.gate.ready:
            # A long poll that began before the gate closed: hand the messages back
            # untouched rather than spend a handler call on a dependency that is down.
            self._release_prefetch(len(messages))
            await asyncio.shield(self._settler.release(messages))
            return
        self._accept(messages)
        if not raw and burst and await self._drained():
            self._stop.set()

    async def _wait_ready(self) -> None:
        # Not ready while any poller waits for a dependency that is down or on the
        # handler's breaker; when all is well both return without suspending, so
        # readiness probes see no flicker.
        self._paused += 1
        try:
            await self.gate.wait_open()
            await self._handler.wait_ready()
        finally:
            self._paused -= 1

    async def _reserve(self) -> int:
        """Wait for room for a full receive (10 messages) in the buffer.

        Taking only what is free would, on a busy worker, make each receive ask
        for the one or two places just freed: many round trips, each costing as
        much CPU as a full one.
        """
        taken = 0
        try:
            while taken < RECEIVE_MAX:
                await self._prefetch.acquire()
                taken += 1
        except BaseException:
            self._release_prefetch(taken)
            raise
        return taken

    def _release_prefetch(self, count: int) -> None:
        for _ in range(count):
            self._prefetch.release()

    async def _receive(self, count: int) -> list[dict[str, object]]:
        response = await self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self._options.receive_wait_seconds,
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        self._polling = True
        return list(response.get("Messages", []))  # type: ignore[arg-type]

    async def _pause_after_error(self, exc: Exception, failures: int) -> None:
        low, high = RECEIVE_ERROR_PAUSE
        pause = min(high, low * 2 ** (failures - 1))
        log.warning("receive failed", queue=self._queue_name, errorMessage=str(exc), pause=pause)
        await asyncio.sleep(pause)

    def _accept(self, messages: Sequence[ReceivedMessage]) -> None:
        for message in messages:
            self._unsettled[message.receipt_handle] = message
            self._heartbeat.track(message)
            self._buffer.put_nowait(message)
        if messages:
            MESSAGES_RECEIVED.labels(self._queue_name).inc(len(messages))

    async def _drained(self) -> bool:
        if self._unsettled or self._running or not self._buffer.empty():
            return False
        if not self._deleter.idle:
            return False
        got = await self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        return all(int(v) == 0 for v in got.get("Attributes", {}).values())

    # -- running -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        max_batch = max(1, self._handler.max_batch)
        while True:
            chunk = await self._next_chunk(max_batch)
            self._release_prefetch(len(chunk))
            for message in chunk:
                message.started = True
            task = asyncio.create_task(self._process(chunk))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_chunk(self, max_batch: int) -> list[ReceivedMessage]:
        """The next message, plus those already buffered while permits are free."""
        await self._chunks.acquire()
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            self._chunks.release()
            raise
        try:
            chunk = [await self._buffer.get()]
        except asyncio.CancelledError:
            self._slots.release()
            self._chunks.release()
            raise
        while len(chunk) < max_batch and not self._buffer.empty() and not self._slots.locked():
            await self._slots.acquire()
            chunk.append(self._buffer.get_nowait())
        return chunk

    async def _process(self, chunk: Sequence[ReceivedMessage]) -> None:
        IN_FLIGHT.labels(self._queue_name).inc(len(chunk))
        try:
            decoded = await self._decode(chunk)
            if decoded:
                with received(self._queue_name, decoded):
                    outcomes = await self._invoker.run([env for _, env in decoded])
                for (message, _), outcome in zip(decoded, outcomes, strict=True):
                    await self._settle(message, outcome)
        except Exception:
            # A bug here must not leak permits or kill the worker: the messages come
            # back after their visibility timeout.
            log.exception("processing a chunk failed", queue=self._queue_name)
            self._forget(chunk)
        finally:
            IN_FLIGHT.labels(self._queue_name).dec(len(chunk))
            self._chunks.release()

    async def _decode(
        self, chunk: Sequence[ReceivedMessage]
    ) -> list[tuple[ReceivedMessage, Envelope]]:
        decoded: list[tuple[ReceivedMessage, Envelope]] = []
        for message in chunk:
            try:
                envelope = decode_body(message.body)
            except PermanentError as exc:
                await self._settle(message, DeadLetter(exc.error_type, exc.message))
                continue
            message.envelope_correlation_id = envelope.correlation_id or str(envelope.event_id)
            attributes = message.message_attributes.keys()
            delivered = as_delivered(envelope, attempt=message.receive_count, attributes=attributes)
            decoded.append((message, delivered))
        return decoded

    async def _settle(self, message: ReceivedMessage, outcome: Outcome) -> None:
        self._heartbeat.untrack(message)
        # Shielded: a shutdown deadline must not cut a DLQ send off from its delete.
        await asyncio.shield(self._settler.settle(message, outcome))
        self._forget([message])
        if not self._unsettled:
            # Nothing else is in flight, so no ack is coming soon to fill the batch.
            self._deleter.flush_soon()

    # -- stopping ------------------------------------------------------------------

    async def _shutdown(self, receivers: list[asyncio.Task[None]]) -> None:
        self._stop.set()
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        await self._release(self._take_buffered())
        await self._finish_running()
        await self._release(list(self._unsettled.values()))
        await self._deleter.close()
        await self._heartbeat.close()
        await self.gate.close()
        self._polling = False

    def _take_buffered(self) -> list[ReceivedMessage]:
        taken: list[ReceivedMessage] = []
        while not self._buffer.empty():
            taken.append(self._buffer.get_nowait())
        return taken

    async def _finish_running(self) -> None:
        if not self._running:
            return
        grace = self._options.shutdown_grace_seconds
        _, late = await asyncio.wait(set(self._running), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.warning("cancelled work that outlived the shutdown grace", tasks=len(late))
            await asyncio.gather(*late, return_exceptions=True)

    async def _release(self, messages: list[ReceivedMessage]) -> None:
        if messages:
            self._forget(messages)
            await asyncio.shield(self._settler.release(messages))

    def _forget(self, messages: Sequence[ReceivedMessage]) -> None:
        for message in messages:
            self._heartbeat.untrack(message)
            if self._unsettled.pop(message.receipt_handle, None) is not None and message.started:
                self._slots.release()
