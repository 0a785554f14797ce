"""Whether a delivery may follow an earlier one, read from what the message says.

A fan-out marker in Redis tells a careful redelivery from a first one, but it
can be lost (a Redis restart without its data) or expire. The message itself
also knows: its receive count, a requeue mark (set when an outage made the
worker send it back with a fresh receive budget), a redrive mark (set by
`socialpipe dlq redrive`) or the failure attributes of a dead letter moved
back by the queue's own message-move task.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from consumers.messages import REDRIVE_MARK
from contracts.events import Envelope

REQUEUE_MARK: Final = "requeuedAt"
# Any of these among a message's attributes (or a Kafka record's headers) means
# an earlier delivery of the same event may already have had effects.
REDELIVERY_MARKS: Final = frozenset({REQUEUE_MARK, REDRIVE_MARK, "errorType", "sourceQueue"})


def is_redelivery(attempt: int, attributes: Collection[str] | Mapping[str, Any]) -> bool:
    return attempt > 1 or not REDELIVERY_MARKS.isdisjoint(attributes)


def as_delivered(envelope: Envelope, *, attempt: int, attributes: Collection[str]) -> Envelope:
    """The envelope, marked as a possible redelivery when the message says so."""
    return envelope.as_redelivery() if is_redelivery(attempt, attributes) else envelope
