"""Batched deletes of acknowledged messages (DeleteMessageBatch, up to 10 per call)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import structlog

from consumers.messages import ReceivedMessage
from contracts.metrics import MESSAGES_ACKED

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

BATCH: Final = 10
# A partial batch waits this long for more acks. Every DeleteMessageBatch costs the
# worker about as much CPU as a full one, so a busy worker sends full batches; an
# idle one does not wait: the consumer calls `flush_soon` once nothing is in flight.
FLUSH_AFTER_SECONDS: Final = 0.5
# Delete calls in flight at once: one round trip at a time caps a worker at
# 10 acks per round trip, which a loaded machine (30 ms trips) makes ~300/s.
IN_FLIGHT: Final = 4

log = structlog.get_logger("consumers.deleter")


class _Flush:
    """Queued by `flush_soon`: the batch being collected goes now."""


FLUSH: Final = _Flush()


class BatchDeleter:
    """Collects acks and deletes them in batches of 10, a few calls at once.

    A partial batch goes after `FLUSH_AFTER_SECONDS`, or at once after `flush_soon`.

    Entries SQS reports as failed are retried once; what still fails is logged
    and comes back after its visibility timeout (the handlers are idempotent).
    """

    def __init__(self, sqs: SQSClient, *, queue_url: str, queue_name: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_name = queue_name
        # None is the close sentinel: it wakes the loop without cancelling it, so no
        # ack the loop has taken can be dropped by a cancellation landing mid-batch.
        self._pending: asyncio.Queue[ReceivedMessage | _Flush | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = 0
        self._collecting = False
        self._room = asyncio.Semaphore(IN_FLIGHT)
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"deleter-{self._queue_name}")

    def add(self, message: ReceivedMessage) -> None:
        self._pending.put_nowait(message)

    def flush_soon(self) -> None:
        """Send the acks collected so far without waiting for a full batch."""
        if self._collecting or not self._pending.empty():
            self._pending.put_nowait(FLUSH)

    @property
    def idle(self) -> bool:
        return self._pending.empty() and self._busy == 0

    async def close(self) -> None:
        """Delete everything acked so far, then stop the loop; safe to call twice."""
        if self._task is not None:
            self._pending.put_nowait(None)
            await asyncio.shield(self._task)
            self._task = None
        while not self._pending.empty():
            batch = self._take_now()
            if batch:
                await asyncio.shield(self._flush(batch))

    async def _run(self) -> None:
        closing = False
        while not closing:
            first = await self._pending.get()
            if first is None:
                break
            if isinstance(first, _Flush):
                continue
            batch = [first]
            self._collecting = True
            try:
                closing = await self._fill(
                    batch, asyncio.get_running_loop().time() + FLUSH_AFTER_SECONDS
                )
            finally:
                self._collecting = False
            self._busy += 1  # the batch is in hand: not idle until it is sent
            try:
                await self._room.acquire()
            except BaseException:
                self._busy -= 1
                raise
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        await asyncio.gather(*self._sending)

    async def _send(self, batch: list[ReceivedMessage]) -> None:
        try:
            await self._flush(batch)
        finally:
            self._busy -= 1
            self._room.release()

    async def _fill(self, batch: list[ReceivedMessage], deadline: float) -> bool:
        """Add acks arriving before `deadline` (up to a full batch). True once closing."""
        while len(batch) < BATCH:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await self._pending.get()
            except TimeoutError:
                return False
            if item is None:
                return True
            if isinstance(item, _Flush):
                return False
            batch.append(item)
        return False

    def _take_now(self) -> list[ReceivedMessage]:
        batch: list[ReceivedMessage] = []
        while len(batch) < BATCH and not self._pending.empty():
            item = self._pending.get_nowait()
            if isinstance(item, ReceivedMessage):
                batch.append(item)
        return batch

    async def _flush(self, batch: Sequence[ReceivedMessage]) -> None:
        self._busy += 1
        try:
            failed = await self._delete(batch)
            if failed:
                failed = await self._delete(failed)
            for message in failed:
                log.warning(
                    "delete failed twice; the message will be redelivered",
                    queue=self._queue_name,
                    messageId=message.message_id,
                )
        finally:
            self._busy -= 1

    async def _delete(self, batch: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(batch)
        ]
        try:
            result = await self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception as exc:  # one failed call must not kill the loop
            log.warning("delete batch failed", queue=self._queue_name, errorMessage=str(exc))
            return list(batch)
        failed_ids = {int(f["Id"]) for f in result.get("Failed", [])}
        MESSAGES_ACKED.labels(self._queue_name).inc(len(batch) - len(failed_ids))
        return [batch[i] for i in sorted(failed_ids)]
