"""A record as the Kafka runtime sees it, and the headers it carries on.

Headers mirror the envelope (`eventType`, `schemaVersion`, `correlationId`) as
SNS/SQS message attributes do. A retried record carries `attempts` (the
delivery it will be) and `retryAt` (epoch seconds before which it must not
run); a dead letter carries `errorType`, `errorMessage`, `failedAt`,
`attempts`, `sourceQueue` and `sourceMessageId`, the same keys as on SQS
(`sourceMessageId` is the record id the worker logs as `messageId`). A record
`dlq redrive` sent back carries `redrivenAt`, kept through its retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from consumers.messages import ERROR_MESSAGE_LIMIT, truncate
from contracts.events import Envelope, format_time
from contracts.outcomes import Failure

Headers = list[tuple[str, bytes]]
RETRY_KEYS: Final = ("attempts", "retryAt")
FAILURE_KEYS: Final = (
    "errorType",
    "errorMessage",
    "failedAt",
    "attempts",
    "sourceQueue",
    "sourceMessageId",
)


RawHeaders = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes] | None


def header_map(headers: RawHeaders) -> dict[str, str]:
    """Headers as text; undecodable or empty values are dropped."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for key, value in items:
        if value:
            try:
                out[key] = value.decode()
            except UnicodeDecodeError:
                continue
    return out


def to_headers(values: Mapping[str, str]) -> Headers:
    return [(k, v.encode()) for k, v in values.items() if v]


def envelope_headers(envelope: Envelope) -> Headers:
    return to_headers(envelope.attributes())


@dataclass(slots=True, eq=False)
class KafkaRecord:
    """One consumed record; `ack` marks its offset safe to commit (call it once, when settled)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    ack: Callable[[], None]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def attempts(self) -> int:
        """Which delivery this is: 1 on the events topic, counted up through retries."""
        try:
            return max(1, int(self.headers.get("attempts", "1")))
        except ValueError:
            return 1

    @property
    def retry_at(self) -> float:
        try:
            return float(self.headers.get("retryAt", "0"))
        except ValueError:
            return 0.0

    @property
    def record_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def body(self) -> str:
        return self.value.decode(errors="replace")

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("correlationId")


def retry_headers(
    record: KafkaRecord, failure: Failure, *, retry_at: float, attempts: int
) -> Headers:
    """The record's own headers, the attempt number it will run as and when it may run."""
    kept = {k: v for k, v in record.headers.items() if k not in (*RETRY_KEYS, *FAILURE_KEYS)}
    return to_headers(
        {
            **kept,
            "attempts": str(attempts),
            "retryAt": f"{retry_at:.3f}",
            "lastErrorType": failure.error_type,
        }
    )


def dead_letter_headers(
    record: KafkaRecord, failure: Failure, *, source_queue: str, failed_at: datetime
) -> Headers:
    """The record's envelope headers plus the failure description.

    See docs/architecture.md#dead-letter-attributes.
    """
    kept = {
        k: v
        for k, v in record.headers.items()
        if k not in (*RETRY_KEYS, *FAILURE_KEYS, "lastErrorType", "sourceOffset")
    }
    return to_headers(
        {
            **kept,
            "errorType": failure.error_type or "Unknown",
            "errorMessage": truncate(failure.reason or "no reason given", ERROR_MESSAGE_LIMIT),
            "failedAt": format_time(failed_at),
            "attempts": str(record.attempts),
            "sourceQueue": source_queue,
            "sourceMessageId": record.record_id,
        }
    )
