"""Errors a resolver raises on purpose, each with its HTTP status and GraphQL code."""

from __future__ import annotations

import math

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


AUTH_REQUIRED = "Authentication required: send an Authorization: Bearer token."
TOKEN_INVALID = "The bearer token is invalid or has expired."
BAD_CREDENTIALS = "Invalid email or password."
NOT_YOUR_DATA = "You can only change your own data."
ONLY_ADDRESSEE = "Only the addressee can respond to a connection request."
NOT_PENDING = "This connection request is no longer pending."
ONLY_CONNECTIONS = "You can only message your connections."
ONLY_CONNECTIONS_COMMENT = "You can only comment on your own posts and your connections' posts."
ACCOUNT_GONE = "The account of this token no longer exists."
BAD_CURSOR = "The feed cursor is not valid."


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


TOO_MANY_ATTEMPTS = "Too many attempts: try again in {seconds} seconds."
PASSWORD_CHECKS_BUSY = "Too many sign-ins at once: try again in a moment."
