"""Applying a verdict to an SQS message: delete, visibility backoff or dead-letter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from config.settings import Settings
from consumers.backoff import clamp_visibility, visibility_backoff
from consumers.deleter import BatchDeleter
from consumers.failure_log import log_failure
from consumers.invoke import Failed, Verdict
from consumers.messages import ReceivedMessage, dead_letter_attributes
from consumers.publish import chunked
from contracts.metrics import MESSAGES_DEAD_LETTERED, MESSAGES_RETRIED

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


log = structlog.get_logger("consumers.settle")


class Settler:
    """Gives each message exactly one outcome on the queue."""

    def __init__(
        self,
        sqs: SQSClient,
        *,
        queue_name: str,
        queue_url: str,
        dlq_url: str,
        settings: Settings,
        deleter: BatchDeleter,
    ) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._settings = settings
        self._deleter = deleter

    async def settle(self, message: ReceivedMessage, verdict: Verdict) -> None:
        if not isinstance(verdict, Failed):
            self._deleter.add(message)
        elif verdict.permanent or message.receive_count >= self._settings.max_receive_count:
            await self.dead_letter(message, verdict)
        else:
            await self.retry_later(message, verdict)

    async def dead_letter(self, message: ReceivedMessage, failure: Failed) -> None:
        """Send to the DLQ with the reason, then delete; a failed send leaves the
        message to come back (and the queue's redrive policy as the safety net)."""
        attributes = dead_letter_attributes(
            message,
            error_type=failure.error_type,
            reason=failure.reason,
            source_queue=self._queue_name,
            failed_at=datetime.now(UTC),
        )
        try:
            await self._sqs.send_message(
                QueueUrl=self._dlq_url, MessageBody=message.body, MessageAttributes=attributes
            )
            await self._sqs.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle
            )
        except Exception as exc:  # the message returns after its visibility timeout
            self._log(message, failure, "dead-lettering failed", sendError=str(exc))
            return
        MESSAGES_DEAD_LETTERED.labels(self._queue_name, failure.error_type).inc()
        self._log(message, failure, "message dead-lettered")

    async def retry_later(self, message: ReceivedMessage, failure: Failed) -> None:
        if failure.delay is not None:
            delay = clamp_visibility(failure.delay)
        else:
            delay = visibility_backoff(
                message.receive_count,
                base=self._settings.retry_base_seconds,
                cap=self._settings.retry_max_seconds,
            )
        try:
            await self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=delay,
            )
        except Exception as exc:  # it returns after the full visibility timeout instead
            self._log(message, failure, "setting retry backoff failed", sendError=str(exc))
        MESSAGES_RETRIED.labels(self._queue_name, failure.error_type).inc()
        self._log(message, failure, "message will be retried", retryInSeconds=delay)

    async def release(self, messages: Sequence[ReceivedMessage]) -> None:
        """Make unstarted messages receivable again at once (visibility 0)."""
        for batch in chunked(messages, 10):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(batch)
            ]
            try:
                await self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url, Entries=entries
                )
            except Exception as exc:  # they return after their visibility timeout anyway
                log.warning("releasing messages failed", errorMessage=str(exc))

    def _log(self, message: ReceivedMessage, failure: Failed, event: str, **extra: Any) -> None:
        log_failure(
            event,
            failure,
            correlation_id=message.correlation_id or message.message_id,
            queue=self._queue_name,
            message_id=message.message_id,
            attempts=message.receive_count,
            body=message.body,
            **extra,
        )
