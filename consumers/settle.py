"""Applying an outcome to an SQS message: delete, visibility backoff, requeue or dead-letter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import structlog

from consumers.backoff import clamp_visibility, visibility_backoff
from consumers.deleter import BatchDeleter
from consumers.delivery import REQUEUE_MARK
from consumers.failure_log import DEAD_LETTER, RETRY, log_failure
from consumers.messages import ReceivedMessage, dead_letter_attributes
from contracts.events import format_time
from contracts.metrics import MESSAGES_DEAD_LETTERED, MESSAGES_REQUEUED, MESSAGES_RETRIED
from contracts.outcomes import DeadLetter, Failure, Outcome, Retry
from contracts.wire import chunked

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

# An outage's retry comes back soon: the gate keeps pollers from taking it until
# the dependency answers, so a long backoff would only delay the recovery.
OUTAGE_RETRY_CAP_SECONDS: Final = 10.0

log = structlog.get_logger("consumers.settle")


@dataclass(frozen=True, slots=True)
class SettleOptions:
    """What settling needs to know of the queue's policy."""

    max_receive_count: int
    retry_base_seconds: float
    retry_max_seconds: float


class Settler:
    """Gives each message exactly one outcome on the queue."""

    def __init__(
        self,
        sqs: SQSClient,
        *,
        queue_name: str,
        queue_url: str,
        dlq_url: str,
        options: SettleOptions,
        deleter: BatchDeleter,
    ) -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._options = options
        self._deleter = deleter

    async def settle(self, message: ReceivedMessage, outcome: Outcome) -> None:
        last = message.receive_count >= self._options.max_receive_count
        if isinstance(outcome, DeadLetter):
            await self.dead_letter(message, outcome)
        elif not isinstance(outcome, Retry):
            self._deleter.add(message)
        elif outcome.outage is not None and last:
            await self.requeue(message, outcome)
        elif last:
            await self.dead_letter(message, outcome)
        else:
            await self.retry_later(message, outcome)

    async def dead_letter(self, message: ReceivedMessage, failure: Failure) -> None:
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
            sent = await self._sqs.send_message(
                QueueUrl=self._dlq_url, MessageBody=message.body, MessageAttributes=attributes
            )
            await self._delete(message)
        except Exception as exc:  # the message returns after its visibility timeout
            self._log(RETRY, message, failure, "dead-lettering failed", sendError=str(exc))
            return
        MESSAGES_DEAD_LETTERED.labels(self._queue_name, failure.error_type).inc()
        self._log(
            DEAD_LETTER,
            message,
            failure,
            "message dead-lettered",
            deadLetterMessageId=sent.get("MessageId"),
        )

    async def requeue(self, message: ReceivedMessage, failure: Retry) -> None:
        """Send a copy back to the queue with a fresh receive budget, then delete.

        Used for an outage on the last allowed receive: the queue's redrive policy
        would otherwise move the message to the DLQ on its next receive, for a
        failure that was never the message's fault. The copy carries a requeue
        mark, so its handler takes the careful path.
        """
        attributes = {
            **_kept_attributes(message, room=9),
            REQUEUE_MARK: {"DataType": "String", "StringValue": format_time(datetime.now(UTC))},
        }
        try:
            await self._sqs.send_message(
                QueueUrl=self._queue_url, MessageBody=message.body, MessageAttributes=attributes
            )
            await self._delete(message)
        except Exception as exc:  # it comes back after its visibility timeout instead
            self._log(RETRY, message, failure, "requeueing failed", sendError=str(exc))
            return
        MESSAGES_REQUEUED.labels(self._queue_name, failure.outage or "").inc()
        self._log(RETRY, message, failure, "message requeued during an outage")

    async def retry_later(self, message: ReceivedMessage, failure: Retry) -> None:
        delay = self._retry_delay(message, failure)
        try:
            await self._sqs.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=delay,
            )
        except Exception as exc:  # it returns after the full visibility timeout instead
            self._log(RETRY, message, failure, "setting retry backoff failed", sendError=str(exc))
        MESSAGES_RETRIED.labels(self._queue_name, failure.error_type).inc()
        self._log(RETRY, message, failure, "message will be retried", retryInSeconds=delay)

    def _retry_delay(self, message: ReceivedMessage, failure: Retry) -> int:
        if failure.delay is not None:
            return clamp_visibility(failure.delay)
        cap = self._options.retry_max_seconds
        if failure.outage is not None:
            cap = min(cap, OUTAGE_RETRY_CAP_SECONDS)
        return visibility_backoff(
            message.receive_count, base=self._options.retry_base_seconds, cap=cap
        )

    async def _delete(self, message: ReceivedMessage) -> None:
        await self._sqs.delete_message(
            QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle
        )

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

    def _log(
        self, level: int, message: ReceivedMessage, failure: Failure, event: str, **extra: Any
    ) -> None:
        log_failure(
            level,
            event,
            failure,
            correlation_id=message.correlation_id or message.message_id,
            queue=self._queue_name,
            message_id=message.message_id,
            attempts=message.receive_count,
            body=message.body,
            **extra,
        )


def _kept_attributes(message: ReceivedMessage, *, room: int) -> dict[str, Any]:
    # ReceiveMessage returns list fields SendMessage refuses; keep only the value.
    kept = {
        name: {k: v for k, v in attr.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, attr in message.message_attributes.items()
        if name != REQUEUE_MARK
    }
    return dict(list(kept.items())[:room])
