"""A received SQS message and the attributes it carries to the dead-letter queue."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from contracts.events import format_time
from contracts.tracing import TRACE_KEYS

ERROR_MESSAGE_LIMIT: Final = 1000
# SQS accepts at most 10 message attributes; ours take six of them.
MAX_ATTRIBUTES: Final = 10
DEAD_LETTER_KEYS: Final = (
    "errorType",
    "errorMessage",
    "failedAt",
    "attempts",
    "sourceQueue",
    "sourceMessageId",
)
# Set by `dlq redrive` on every message it sends back (ISO-8601 UTC), so a worker
# can tell a redelivery from a first delivery and take the de-duplicating path.
REDRIVE_MARK: Final = "redrivenAt"


@dataclass(slots=True, eq=False)
class ReceivedMessage:
    """One message as received; it keeps its receipt handle whatever its body holds."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    message_attributes: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)
    envelope_correlation_id: str | None = None
    started: bool = False

    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any]) -> ReceivedMessage:
        attrs = raw.get("Attributes", {})
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
            message_attributes=dict(raw.get("MessageAttributes", {})),
        )

    @property
    def correlation_id(self) -> str | None:
        attr = self.message_attributes.get("correlationId")
        if isinstance(attr, dict) and attr.get("StringValue"):
            return str(attr["StringValue"])
        return self.envelope_correlation_id


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead_letter_attributes(
    message: ReceivedMessage,
    *,
    error_type: str,
    reason: str,
    source_queue: str,
    failed_at: datetime,
) -> dict[str, Any]:
    """The original message attributes plus the failure description.

    See docs/architecture.md#dead-letter-attributes.

    `sourceMessageId` is the id the worker logs as `messageId`, so an operator can
    go from the "message dead-lettered" log line to `dlq show QUEUE ID`.
    """
    ours: dict[str, Any] = {
        "errorType": _string(error_type or "Unknown"),
        "errorMessage": _string(truncate(reason or "no reason given", ERROR_MESSAGE_LIMIT)),
        "failedAt": _string(format_time(failed_at)),
        "attempts": {"DataType": "Number", "StringValue": str(message.receive_count)},
        "sourceQueue": _string(source_queue),
        "sourceMessageId": _string(message.message_id),
    }
    kept = [(k, _copyable(v)) for k, v in message.message_attributes.items() if k not in ours]
    # Short of room, the trace context is dropped before the event's own attributes.
    kept.sort(key=lambda item: item[0] in TRACE_KEYS)
    room = MAX_ATTRIBUTES - len(ours)
    return {**dict(kept[:room]), **ours}


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _copyable(attr: Mapping[str, Any]) -> dict[str, Any]:
    # ReceiveMessage returns list fields SendMessage refuses; keep only the value.
    return {k: v for k, v in attr.items() if k in ("DataType", "StringValue", "BinaryValue")}
