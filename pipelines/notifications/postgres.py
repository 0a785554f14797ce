"""The PostgreSQL adapter of `NotificationStore`."""

from __future__ import annotations

from typing import Any

from contracts.failures import POSTGRES, boundary
from pipelines.notifications.plan import Notification


class PgNotificationStore:
    """`NotificationStore` over an asyncpg pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def save(self, notification: Notification) -> bool:
        n = notification
        with boundary(f"Saving notification {n.event_id} in PostgreSQL", dependency=POSTGRES):
            return await self._save(n)

    async def _save(self, n: Notification) -> bool:
        async with self._pool.acquire() as conn:
            # A user deleted meanwhile has nobody to notify: insert nothing.
            inserted = await conn.fetchval(
                # A row for the same source written by `reconcile notifications` makes
                # the insert trigger skip this one: no second row, no second count.
                "INSERT INTO notifications"
                " (event_id, user_id, kind, actor_id, subject_id, source_id)"
                " SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)"
                " ON CONFLICT (event_id) DO NOTHING RETURNING true",
                n.event_id,
                n.user_id,
                n.kind,
                n.actor_id,
                n.subject_id,
                n.source_id,
            )
            if inserted:
                return True
            unread = await conn.fetchval(
                "SELECT read_at IS NULL FROM notifications WHERE event_id = $1", n.event_id
            )
            return bool(unread)
