"""The one classifier: whatever a handler raises becomes exactly one outcome here.

Handlers return outcomes for domain decisions and let failures escape;
adapters have already turned their client's errors into our types
(`contracts.failures`), and anything that slipped through is translated the
same way here. Both transports (SQS and Kafka) call this and nothing else.
"""

from __future__ import annotations

import traceback

from contracts.errors import DependencyDown, PermanentError, TransientError
from contracts.failures import translate
from contracts.outcomes import DeadLetter, Failure, Retry


def classify(exc: BaseException, *, operation: str = "Handling the event") -> Failure:
    """The outcome for `exc`: dead letter (permanent), retry (transient), or an
    outage retry naming the dependency that is down."""
    stack = "".join(traceback.format_exception(exc))
    error = translate(exc, operation=operation)
    if isinstance(error, PermanentError):
        return DeadLetter(error.error_type, error.message, stack=stack)
    if isinstance(error, DependencyDown):
        return Retry(error.error_type, error.message, outage=error.dependency, stack=stack)
    if isinstance(error, TransientError):
        return Retry(error.error_type, error.message, stack=stack)
    # Unknown failures are likely bugs: hammering them in-process does not help;
    # the queue's redelivery gives them their chance, then the DLQ keeps them.
    return Retry(error.error_type, error.message, in_process=False, stack=stack)
