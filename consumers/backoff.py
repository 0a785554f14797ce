"""Retry timing and failure classification: pure functions."""

from __future__ import annotations

import math
import random
from typing import Final

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from contracts.errors import PermanentError, TransientError

MAX_VISIBILITY_SECONDS: Final = 43_200
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestLimitExceeded",
    }
)


def visibility_backoff(
    receive_count: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> int:
    """Seconds until the next receive: full jitter over min(cap, base * 2**(count-1)).

    The attempt number comes from ApproximateReceiveCount, not process memory,
    so the backoff keeps growing across worker restarts.
    """
    exponent = max(0, receive_count - 1)
    ceiling = min(cap, base * 2.0 ** min(exponent, 60))
    jittered = (rng or random).uniform(0, ceiling)
    return clamp_visibility(jittered)


def clamp_visibility(seconds: float) -> int:
    return max(0, min(MAX_VISIBILITY_SECONDS, math.ceil(seconds)))


def is_transient(exc: BaseException) -> bool:
    """Whether retrying soon may help: our transient type, I/O trouble, 5xx, throttling."""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TransientError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        return _client_error_is_transient(exc)
    return False


def _client_error_is_transient(exc: ClientError) -> bool:
    response = exc.response or {}
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    code = str(response.get("Error", {}).get("Code", ""))
    return status >= 500 or status == 429 or code in THROTTLING_CODES


def error_type_of(exc: BaseException) -> str:
    """`error_type` of our own errors, else the exception's class name."""
    error_type = getattr(exc, "error_type", None)
    return error_type if isinstance(error_type, str) else type(exc).__name__


def describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text) or type(exc).__name__
