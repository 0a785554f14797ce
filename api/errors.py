"""Errors a resolver raises on purpose, each with its HTTP status and GraphQL code.

Their messages are in `contracts.api_messages`.
"""

from __future__ import annotations

import math

from contracts.api_messages import PASSWORD_CHECKS_BUSY, TOO_MANY_ATTEMPTS
from contracts.validation import ValidationFailed


class ApiError(Exception):
    """An expected failure: one sentence for the user, a status, a code, maybe a field."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(ApiError):
    @classmethod
    def from_validation(cls, exc: ValidationFailed) -> BadRequest:
        return cls(exc.message, exc.field)


class Unauthenticated(ApiError):
    status = 401
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class TooManyRequests(ApiError):
    """A rate limit refused the request; `retry_after` whole seconds until it would pass."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(TOO_MANY_ATTEMPTS.format(seconds=self.retry_after))


class SignInBusy(ApiError):
    """Too many password checks are already waiting; the client should retry shortly."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(PASSWORD_CHECKS_BUSY)
