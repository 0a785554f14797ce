"""Failure types shared by the consumer runtime and the pipelines.

A failure is either *permanent* (retrying cannot help: the message goes to the
dead-letter queue at once) or *transient* (retried in-process, then through
visibility backoff). The type decides; callers never inspect strings.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every failure a handler or the runtime classifies."""

    error_type = "PipelineError"

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_type is not None:
            self.error_type = error_type


class PermanentError(PipelineError):
    """Retrying cannot succeed: dead-letter at once."""

    error_type = "PermanentError"


class MalformedMessage(PermanentError):
    error_type = "MalformedMessage"


class MessageTooLarge(PermanentError):
    error_type = "MessageTooLarge"


class UnsupportedSchemaVersion(PermanentError):
    error_type = "UnsupportedSchemaVersion"


class InvalidEvent(PermanentError):
    """The envelope or payload fails validation (missing or ill-typed field)."""

    error_type = "InvalidEvent"


class TransientError(PipelineError):
    """A downstream hiccup: retry with backoff."""

    error_type = "TransientError"


class DependencyUnavailable(TransientError):
    """A circuit breaker is open and no fallback exists."""

    error_type = "DependencyUnavailable"
