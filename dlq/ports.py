"""The `DeadLetters` port: what the operator tools need of a transport's dead letters.

The SQS implementation lives in `dlq/sqs.py`; `config/dlq.py` chooses one by
`EVENT_TRANSPORT`, so `cli/dlq.py` never sees receipt handles or offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """One dead-lettered message as an operator sees it."""

    message_id: str
    body: str
    attributes: Mapping[str, str]
    receive_count: int
    sent_at: datetime | None

    @property
    def event_type(self) -> str:
        return self.attributes.get("eventType", "unknown")

    @property
    def error_type(self) -> str:
        return self.attributes.get("errorType", "unknown")

    @property
    def error_message(self) -> str:
        return self.attributes.get("errorMessage", "")


@dataclass(frozen=True, slots=True)
class Peek:
    """What `peek` saw: the messages (up to the limit) and the queue's approximate depth."""

    messages: tuple[DeadMessage, ...]
    depth: int
    complete: bool


@dataclass(frozen=True, slots=True)
class RedriveOptions:
    """`max_messages` None = all; `rate` messages/s (None = unlimited); `event_type` filter."""

    max_messages: int | None = None
    rate: float | None = None
    event_type: str | None = None
    dry_run: bool = False


@dataclass(slots=True)
class RedriveResult:
    """What a redrive did. `method` is `move-task` or `receive-send-delete`."""

    method: str
    moved: int = 0
    matched: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]
"""Called with (messages done so far, total expected) while a redrive runs."""


class DeadLetters(Protocol):
    """Inspect and redrive the dead letters of one of the pipelines' source queues.

    `queue` is always the *source* queue's name (e.g. `feed-fanout`); the
    implementation knows where that queue's dead letters live.
    """

    async def count(self, queue: str) -> int:
        """Approximate number of dead letters waiting."""
        ...

    async def peek(self, queue: str, *, limit: int) -> Peek:
        """Up to `limit` dead letters, without consuming them."""
        ...

    async def get(self, queue: str, message_id: str) -> DeadMessage | None:
        """One dead letter by id, without consuming it; None when it is not there."""
        ...

    async def redrive(
        self, queue: str, options: RedriveOptions, progress: Progress | None = None
    ) -> RedriveResult:
        """Move dead letters back to the source queue (at-least-once, never loses one)."""
        ...

    async def purge(self, queue: str) -> int:
        """Delete every dead letter; returns how many there were (approximately)."""
        ...


def sent_time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "?"
