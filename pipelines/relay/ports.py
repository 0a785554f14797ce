"""What the relay needs from the event bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from store.outbox import OutboxRow


class EventPublisher(Protocol):
    """Publishes outbox rows to the events topic."""

    async def publish(self, rows: Sequence[OutboxRow]) -> set[int]:
        """Publish every row; return the ids of rows the bus did not accept.

        Raises `TransientError` when the bus cannot be reached at all.
        """
        ...
