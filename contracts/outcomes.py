"""Per-message outcomes and the handler protocol the transports drive.

Every message ends in exactly one outcome, in this one vocabulary from the
handler to the queue: `Ack`, `Retry` or `DeadLetter`. Handlers return outcomes
for their domain decisions; exceptions that escape them are turned into
outcomes by one classifier (`consumers.classify`). Handlers receive decoded
envelopes and know nothing of SQS receipt handles or Kafka offsets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts.events import Envelope


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: delete the message."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Transient failure: retry later.

    `delay` overrides the computed backoff. `outage` names the dependency that
    is down: the worker pauses and the message is never dead-lettered for it.
    `in_process` is False for failures not known to be transient (likely bugs):
    only the queue's redelivery retries those.
    """

    error_type: str
    reason: str
    delay: float | None = None
    outage: str | None = None
    in_process: bool = True
    stack: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Permanent failure: move to the dead-letter queue with this reason."""

    error_type: str
    reason: str
    stack: str | None = None


Outcome = Ack | Retry | DeadLetter
Failure = Retry | DeadLetter

ACK = Ack()

Probe = Callable[[], Awaitable[object]]
"""Raises while a dependency does not answer; cheap (a PING, a `SELECT 1`)."""


class EventHandler(Protocol):
    """What a pipeline offers a transport.

    `max_batch` is how many envelopes one `handle` call takes (1 for per-event
    pipelines, more for pipelines that coalesce). `dependencies` names the
    services the handler cannot work without, each with a probe: while one is
    down the transport stops taking messages. `wait_ready` returns once the
    pipeline's own guards (a circuit breaker) let work through.
    """

    name: str
    max_batch: int

    @property
    def dependencies(self) -> Mapping[str, Probe]: ...

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]: ...

    async def wait_ready(self) -> None: ...
