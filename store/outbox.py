"""The transactional outbox (MAP-003).

A state change and the envelope of its event are written in one transaction
(`enqueue`), so the event exists exactly when the change does. The relay later
claims pending rows with `FOR UPDATE SKIP LOCKED` (several relays never take the
same row), publishes them and marks them published in that same transaction: a
crash between claim and publish rolls back and the rows are claimed again, so
nothing is lost and delivery is at-least-once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.events import Envelope

NOTIFY_CHANNEL = "outbox"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One pending event as the relay sees it."""

    id: int
    event_id: uuid.UUID
    event_type: str
    aggregate_key: str
    body: str
    attempts: int


async def enqueue(conn: Any, envelope: Envelope, aggregate_key: uuid.UUID | str) -> None:
    """Write `envelope` to the outbox on `conn`, which must be inside the caller's transaction.

    Idempotent by event id, so a retried unit of work cannot publish an event twice.
    """
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_key, body) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (event_id) DO NOTHING",
        envelope.event_id,
        envelope.event_type,
        str(aggregate_key),
        envelope.to_json().decode(),
    )


async def claim(conn: Any, limit: int) -> list[OutboxRow]:
    """Lock up to `limit` pending rows, oldest first, skipping rows another relay holds.

    Must run inside a transaction; the locks last until it ends.
    """
    rows = await conn.fetch(
        "SELECT id, event_id, event_type, aggregate_key, body, attempts FROM outbox"
        " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [OutboxRow(**dict(r)) for r in rows]


async def mark_published(conn: Any, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
            " WHERE id = ANY($1::bigint[])",
            list(ids),
        )


async def record_failure(conn: Any, ids: Sequence[int]) -> None:
    """Count a failed publish attempt; the rows stay pending."""
    if ids:
        await conn.execute(
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[])", list(ids)
        )


async def lag_seconds(conn: Any) -> float:
    """Age of the oldest unpublished row in seconds (0 when nothing is pending)."""
    value = await conn.fetchval(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8"
        " FROM outbox WHERE published_at IS NULL"
    )
    return float(value or 0.0)


async def pending_count(conn: Any) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def purge_published(conn: Any, older_than_seconds: float) -> int:
    """Delete published rows older than the horizon; returns how many went."""
    status = await conn.execute(
        "DELETE FROM outbox WHERE published_at IS NOT NULL"
        " AND published_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(status.split()[-1])
