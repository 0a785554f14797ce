"""The failure log line every transport writes (DESIGN §4: correlationId, serviceName,
errorMessage, stackTrace, eventPayload); serviceName comes from the bound context."""

from __future__ import annotations

from typing import Final

import structlog

from consumers.invoke import Failed
from consumers.messages import truncate

PAYLOAD_LOG_LIMIT: Final = 2000

log = structlog.get_logger("consumers.failures")


def log_failure(
    event: str,
    failure: Failed,
    *,
    correlation_id: str,
    queue: str,
    message_id: str,
    attempts: int,
    body: str,
    **extra: object,
) -> None:
    """Log at error when the message is done with (dead-lettered), warning when retried."""
    final = "retried" not in event
    (log.error if final else log.warning)(
        event,
        correlationId=correlation_id,
        queue=queue,
        messageId=message_id,
        errorType=failure.error_type,
        errorMessage=failure.reason,
        attempts=attempts,
        stackTrace=failure.stack,
        eventPayload=truncate(body, PAYLOAD_LOG_LIMIT),
        **extra,
    )
