"""Visibility heartbeat: keeps long-running messages invisible while they are worked on."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final

import structlog

from consumers.messages import ReceivedMessage
from contracts.wire import chunked

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

BATCH: Final = 10

log = structlog.get_logger("consumers.heartbeat")


class Heartbeat:
    """Extends the visibility of tracked messages once their work outlives a third
    of the visibility timeout, resetting it to the full timeout from now."""

    def __init__(self, sqs: SQSClient, *, queue_url: str, visibility_timeout: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._timeout = visibility_timeout
        self._threshold = visibility_timeout / 3
        self._tracked: dict[str, tuple[ReceivedMessage, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.extensions = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="visibility-heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def track(self, message: ReceivedMessage) -> None:
        """Count from the receive: time spent queued locally uses up visibility too."""
        self._tracked[message.receipt_handle] = (message, message.received_at)

    def untrack(self, message: ReceivedMessage) -> None:
        self._tracked.pop(message.receipt_handle, None)

    def due(self, now: float) -> list[ReceivedMessage]:
        return [m for m, since in self._tracked.values() if now - since >= self._threshold]

    async def _run(self) -> None:
        interval = max(0.2, self._threshold / 3)
        while True:
            await asyncio.sleep(interval)
            await self.beat()

    async def beat(self) -> None:
        """Extend every message that is due; one failed call is logged, not fatal."""
        now = time.monotonic()
        for batch in chunked(self.due(now), BATCH):
            entries: list[Any] = [
                {
                    "Id": str(i),
                    "ReceiptHandle": m.receipt_handle,
                    "VisibilityTimeout": self._timeout,
                }
                for i, m in enumerate(batch)
            ]
            try:
                result = await self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            except Exception as exc:  # try again on the next beat
                log.warning("visibility heartbeat failed", errorMessage=str(exc))
                continue
            failed = {int(f["Id"]) for f in result.get("Failed", [])}
            for i, message in enumerate(batch):
                if i not in failed and message.receipt_handle in self._tracked:
                    self._tracked[message.receipt_handle] = (message, now)
                    self.extensions += 1
