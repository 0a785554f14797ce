"""Per-message outcomes and the handler protocol the transports drive.

Every message ends in exactly one outcome. Handlers receive decoded envelopes
and return one outcome per envelope, in order; they know nothing of SQS
receipt handles or Kafka offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts.events import Envelope


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: delete the message."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Transient failure: retry later. `delay` overrides the computed backoff."""

    error_type: str
    reason: str
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Permanent failure: move to the dead-letter queue with this reason."""

    error_type: str
    reason: str


Outcome = Ack | Retry | DeadLetter

ACK = Ack()


class EventHandler(Protocol):
    """What a pipeline offers a transport.

    `max_batch` is how many envelopes one `handle` call takes (1 for per-event
    pipelines, more for pipelines that coalesce). `wait_ready` returns once the
    pipeline can accept work; transports call it before each receive so a
    pipeline whose dependency is down pauses polling instead of burning
    receive counts.
    """

    name: str
    max_batch: int

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]: ...

    async def wait_ready(self) -> None: ...
