"""Failure types shared by the adapters, the handlers and the consumer runtime.

A failure is one of three kinds, and the type decides (callers never inspect
strings):

- *permanent*: retrying cannot help; the message goes to the dead-letter queue
  at once (`PermanentError` and its subclasses);
- *transient*: a hiccup worth a bounded number of retries, then the dead-letter
  queue (`TransientError`);
- *outage*: a dependency the handler cannot work without is down
  (`DependencyDown`); the worker pauses until it answers again and never spends
  the message's receive budget on it.

Adapters raise these at their boundary with the operation that failed, so the
reason that reaches a log line or a dead letter names it. What escapes
untranslated is classified once, by `consumers.classify`.
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


class UnknownEntity(PermanentError):
    """The event names an entity the source of truth does not have (e.g. a post)."""

    error_type = "UnknownEntity"


class TransientError(PipelineError):
    """A downstream hiccup: retry with backoff, a bounded number of times."""

    error_type = "TransientError"


class DependencyDown(TransientError):
    """A dependency does not answer at all: pause the worker instead of dead-lettering.

    `dependency` names it the way operators do ("PostgreSQL", "Redis", "search index").
    """

    error_type = "DependencyDown"

    def __init__(self, dependency: str, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message, error_type=error_type)
        self.dependency = dependency


class DependencyUnavailable(DependencyDown):
    """A circuit breaker is open and no fallback exists."""

    error_type = "DependencyUnavailable"


def failed_operation(operation: str, exc: BaseException) -> str:
    """The one wording of a reason: what was being done, then what went wrong."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{operation} failed: {detail}"
