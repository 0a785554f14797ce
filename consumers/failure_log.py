"""The failure log line every transport writes: correlationId, serviceName (from the
bound context), errorMessage, stackTrace, eventPayload.

The level is the caller's decision, stated where the outcome is applied: a retry
is a WARNING, a dead letter an ERROR.
"""

from __future__ import annotations

import logging
from typing import Final

import structlog

from consumers.messages import truncate
from contracts.outcomes import Failure

PAYLOAD_LOG_LIMIT: Final = 2000
RETRY: Final = logging.WARNING
DEAD_LETTER: Final = logging.ERROR

log = structlog.get_logger("consumers.failures")


def log_failure(
    level: int,
    event: str,
    failure: Failure,
    *,
    correlation_id: str,
    queue: str,
    message_id: str,
    attempts: int,
    body: str,
    **extra: object,
) -> None:
    """One line describing `failure` of one message, at `level`."""
    log.log(
        level,
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
