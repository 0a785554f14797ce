"""Ports of the notifications pipeline."""

from __future__ import annotations

import uuid
from typing import Protocol

from pipelines.notifications.plan import Notification


class NotificationStore(Protocol):
    """The notification rows (PostgreSQL)."""

    async def save(self, notification: Notification) -> bool:
        """Write the row unless one exists for its event id; skip it if its user is gone.

        True when the row exists and is still unread afterwards (so it should be counted).
        """
        ...


class UnreadCounters(Protocol):
    """Per-user unread counters and the real-time channel (Redis)."""

    async def count_once(self, notification: Notification) -> int:
        """Add one to the recipient's unread counter unless this event was counted before,
        and announce the notification; returns the counter."""
        ...

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        """Set the counter to `unread` (the rows still unread after marking them read)."""
        ...

    async def unread(self, user_id: uuid.UUID) -> int: ...
