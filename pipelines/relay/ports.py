"""What the relay needs from the event bus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from store.outbox import OutboxRow


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Rows that did not go out. `refused` rows are at fault themselves (the bus answered
    and rejected them, or their body cannot be sent), with the reason; `unsent` rows only
    met a passing failure (throttling, a server error) and are simply retried."""

    refused: dict[int, str] = field(default_factory=dict)
    unsent: frozenset[int] = frozenset()

    @property
    def failed(self) -> set[int]:
        return set(self.refused) | self.unsent


class EventPublisher(Protocol):
    """Publishes outbox rows to the events topic."""

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        """Publish every row; report the rows that did not go out.

        Raises `TransientError` when the bus cannot be reached at all.
        """
        ...
