"""Notification rows as the API reads and marks them (the worker writes them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None


async def list_notifications(conn: Any, user_id: uuid.UUID, first: int) -> list[NotificationRow]:
    rows = await conn.fetch(
        "SELECT id, kind, actor_id, subject_id, created_at, read_at FROM notifications"
        " WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        user_id,
        first,
    )
    return [NotificationRow(**dict(r)) for r in rows]


async def mark_all_read(conn: Any, user_id: uuid.UUID) -> int:
    """Mark every unread notification read; returns how many are still unread (normally 0)."""
    await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user_id
    )
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
        )
    )
