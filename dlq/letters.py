"""What a dead letter says about itself, read the same way for SQS and Kafka (pure).

A dead letter the worker wrote carries our failure attributes (`errorType`,
`errorMessage`, `failedAt`, `attempts`, `sourceQueue`, `sourceMessageId`). One
without them got there another way: SQS's redrive policy moved it after
maxReceiveCount receives (a worker that died on it every time), or someone put
it there by hand. Such a message is reported as `maxReceiveCountExceeded`, and
its event type is read from its body, raw or SNS-wrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from contracts.errors import PermanentError

MAX_RECEIVE_COUNT_EXCEEDED: Final = "maxReceiveCountExceeded"
UNKNOWN: Final = "unknown"
# docs/architecture.md#the-shape: the redrive policy `queues create` sets. Shown as "≥4" when the
# source queue's own policy cannot be read.
CONTRACT_MAX_RECEIVE_COUNT: Final = 4
# Bodies larger than SQS allows are not parsed just to name their event type.
_PARSE_LIMIT: Final = 256 * 1024

# Permanent failures that are not raised as a `PermanentError` subclass but
# returned by a handler as a `DeadLetter` outcome, or raised with their own name.
_OTHER_PERMANENT: Final = frozenset({"InvalidDocument", "DocumentRejected", "UnknownEventType"})


def _subclasses(cls: type[PermanentError]) -> set[type[PermanentError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def permanent_error_types() -> frozenset[str]:
    """Every errorType that no retry can fix: redrive leaves these unless asked."""
    return frozenset({c.error_type for c in _subclasses(PermanentError)} | _OTHER_PERMANENT)


def is_permanent_error_type(error_type: str) -> bool:
    """Whether a dead letter of this errorType would fail again exactly the same way."""
    return error_type in permanent_error_types()


def error_type_of(attributes: Mapping[str, str]) -> str:
    """The recorded errorType; none recorded means the queue's redrive policy moved it."""
    return attributes.get("errorType") or MAX_RECEIVE_COUNT_EXCEEDED


def event_type_of(attributes: Mapping[str, str], body: str | bytes) -> str:
    """The eventType attribute, else the one in the (raw or SNS-wrapped) envelope."""
    return attributes.get("eventType") or _event_type_in_body(body) or UNKNOWN


def _event_type_in_body(body: str | bytes) -> str | None:
    data = _json_object(body)
    if data is None:
        return None
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        inner = _json_object(data["Message"])
        return _string(inner, "eventType") or _sns_attribute(data, "eventType")
    return _string(data, "eventType")


def _json_object(text: str | bytes) -> dict[str, Any] | None:
    if len(text) > _PARSE_LIMIT:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _string(data: Mapping[str, Any] | None, key: str) -> str | None:
    value = data.get(key) if data is not None else None
    return value if isinstance(value, str) and value else None


def _sns_attribute(notification: Mapping[str, Any], key: str) -> str | None:
    attributes = notification.get("MessageAttributes")
    entry = attributes.get(key) if isinstance(attributes, dict) else None
    return _string(entry, "Value") if isinstance(entry, dict) else None


def attempts_of(attributes: Mapping[str, str], *, moved_after: str) -> str:
    """How many deliveries the workers saw, as shown to an operator.

    Never the dead letter's own receive count: that grows every time someone
    looks at it. `moved_after` is what to show for a message without failure
    attributes (see `policy_attempts`).
    """
    recorded = attributes.get("attempts")
    if recorded:
        return recorded
    return "?" if "errorType" in attributes else moved_after


def policy_attempts(max_receive_count: int | None) -> str:
    """A message the redrive policy moved was received exactly maxReceiveCount times."""
    if max_receive_count is not None:
        return str(max_receive_count)
    return f"≥{CONTRACT_MAX_RECEIVE_COUNT}"
