"""Notification rows: as the API reads and marks them, and as reconciliation completes them.

The worker writes rows (`pipelines/notifications/postgres.py`), deduplicated by
event id; reconciliation writes the rows the source tables call for and that
are missing, deduplicated by (kind, source_id) (migration 0005).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final


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


# -- reconciliation: the rows the source tables call for ----------------------

# The notification each source row calls for, for a batch of recipients:
# a pending request tells its addressee, an accepted one its requester, a
# comment on someone else's post the post's author. Shown at the source's time.
_EXPECTED = """
SELECT 'connection_requested' AS kind, c.id AS source_id, c.addressee_id AS user_id,
       c.requester_id AS actor_id, c.id AS subject_id, c.created_at
  FROM connections c
 WHERE c.status = 'pending' AND c.addressee_id = ANY($1::uuid[])
UNION ALL
SELECT 'connection_accepted', c.id, c.requester_id, c.addressee_id, c.id,
       coalesce(c.responded_at, c.created_at)
  FROM connections c
 WHERE c.status = 'accepted' AND c.requester_id = ANY($1::uuid[])
UNION ALL
SELECT 'comment_created', m.id, p.author_id, m.author_id, p.id, m.created_at
  FROM posts p JOIN comments m ON m.post_id = p.id
 WHERE p.author_id = ANY($1::uuid[]) AND m.author_id <> p.author_id
"""

_MISSING = f"""
SELECT e.* FROM ({_EXPECTED}) e
 WHERE NOT EXISTS (SELECT 1 FROM notifications n
                    WHERE n.kind = e.kind AND n.source_id = e.source_id)
"""

# ON CONFLICT without a target: the event id and the (kind, source_id) key both
# make a second writer of the same row a no-op (migration 0005's trigger also
# drops a row whose source has one already).
_INSERT = """
INSERT INTO notifications (event_id, user_id, kind, actor_id, subject_id, source_id, created_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[],
                     $7::timestamptz[]) AS e(event_id, user_id, kind, actor_id, subject_id,
                                            source_id, created_at)
 WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id)
ON CONFLICT DO NOTHING
RETURNING 1
"""

_UNREAD = """
SELECT u.id AS user_id, count(n.id) FILTER (WHERE n.read_at IS NULL) AS unread
  FROM unnest($1::uuid[]) AS u(id)
  LEFT JOIN notifications n ON n.user_id = u.id
 GROUP BY u.id
"""

# Event ids of rows written by reconciliation: derived from the source, so the
# same missing row gets the same id however often it is inserted.
RECONCILED_EVENTS: Final = uuid.UUID("5d0f4a9e-6c1b-4f43-9a57-2f6f1d0c7b31")


@dataclass(frozen=True, slots=True)
class SourcedNotification:
    """A notification the source tables call for, keyed by (kind, source_id)."""

    kind: str
    source_id: uuid.UUID
    user_id: uuid.UUID
    actor_id: uuid.UUID
    subject_id: uuid.UUID
    created_at: datetime

    @property
    def event_id(self) -> uuid.UUID:
        return uuid.uuid5(RECONCILED_EVENTS, f"{self.kind}:{self.source_id}")


async def missing_notifications(
    conn: Any, user_ids: Sequence[uuid.UUID]
) -> list[SourcedNotification]:
    """The rows the source tables call for that `user_ids` lack, keyed by (kind, source)."""
    rows = await conn.fetch(_MISSING, list(user_ids))
    return [SourcedNotification(**dict(r)) for r in rows]


async def insert_notifications(conn: Any, rows: Sequence[SourcedNotification]) -> int:
    """Insert `rows` unread, skipping any whose source has a row already; returns how many."""
    if not rows:
        return 0
    inserted = await conn.fetch(
        _INSERT,
        [r.event_id for r in rows],
        [r.user_id for r in rows],
        [r.kind for r in rows],
        [r.actor_id for r in rows],
        [r.subject_id for r in rows],
        [r.source_id for r in rows],
        [r.created_at for r in rows],
    )
    return len(inserted)


async def unread_counts(conn: Any, user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Unread rows (read_at null) of each of `user_ids`, zero included."""
    rows = await conn.fetch(_UNREAD, list(user_ids))
    return {r["user_id"]: int(r["unread"]) for r in rows}
