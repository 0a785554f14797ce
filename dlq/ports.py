"""The `DeadLetters` port: what the operator tools need of a transport's dead letters.

The SQS implementation lives in `dlq/sqs.py`; `config/dlq.py` chooses one by
`EVENT_TRANSPORT`, so `cli/dlq.py` never sees receipt handles or offsets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dlq.letters import error_type_of, event_type_of, is_permanent_error_type


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """One dead-lettered message as an operator sees it.

    `attempts` is what the workers saw (see `dlq.letters.attempts_of`), text
    because a message the redrive policy moved may only be known as "≥4".
    """

    message_id: str
    body: str
    attributes: Mapping[str, str]
    attempts: str
    sent_at: datetime | None

    @property
    def event_type(self) -> str:
        return event_type_of(self.attributes, self.body)

    @property
    def error_type(self) -> str:
        return error_type_of(self.attributes)

    @property
    def error_message(self) -> str:
        return self.attributes.get("errorMessage", "")

    @property
    def source_message_id(self) -> str | None:
        """The id the worker logged as `messageId` when it dead-lettered this message."""
        return self.attributes.get("sourceMessageId")

    @property
    def permanent(self) -> bool:
        return is_permanent_error_type(self.error_type)

    def known_as(self, message_id: str) -> bool:
        """Whether `message_id` names this dead letter or the message it came from."""
        return message_id in (self.message_id, self.source_message_id)


@dataclass(frozen=True, slots=True)
class Peek:
    """What `peek` saw: the messages (up to the limit) and the queue's approximate depth."""

    messages: tuple[DeadMessage, ...]
    depth: int
    complete: bool


@dataclass(frozen=True, slots=True)
class RedriveOptions:
    """`max_messages` None = all; `rate` messages/s (None = unlimited); filters by
    `event_type` and `error_type`; permanent failures stay unless `include_permanent`."""

    max_messages: int | None = None
    rate: float | None = None
    event_type: str | None = None
    dry_run: bool = False
    error_type: str | None = None
    include_permanent: bool = False

    def selects(self, message: DeadMessage) -> bool:
        """Whether the filters pick `message` (before the permanent-failure rule)."""
        return self.event_type in (None, message.event_type) and self.error_type in (
            None,
            message.error_type,
        )

    def holds_back(self, message: DeadMessage) -> bool:
        """Whether a selected message stays dead-lettered as a permanent failure."""
        return message.permanent and not self.include_permanent


@dataclass(slots=True)
class RedriveResult:
    """What a redrive did. `method` is `move-task` or `receive-send-delete`.

    `matched` messages were (or in a dry run would be) sent back, `moved` of them
    were; `skipped` did not pass the filters; `permanent` passed them but stayed
    as permanent failures. `by_error_type` counts every message the filters
    selected, sent or not.
    """

    method: str
    moved: int = 0
    matched: int = 0
    skipped: int = 0
    permanent: int = 0
    by_error_type: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def consider(self, message: DeadMessage, options: RedriveOptions) -> bool:
        """Count `message`; True when it is to be sent back."""
        if not options.selects(message):
            self.skipped += 1
            return False
        self.by_error_type[message.error_type] += 1
        if options.holds_back(message):
            self.permanent += 1
            return False
        self.matched += 1
        return True

    @property
    def seen(self) -> int:
        return self.matched + self.skipped + self.permanent


class DeadLettersMissing(LookupError):
    """The place a queue's dead letters live does not exist (not set up yet)."""


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
