"""The transactional outbox (docs/architecture.md#the-outbox).

A state change and the envelope of its event are written in one transaction
(`enqueue`), so the event exists exactly when the change does. The relay later
claims pending rows with `FOR UPDATE SKIP LOCKED` (several relays never take the
same row), publishes them and marks them published in that same transaction: a
crash between claim and publish rolls back and the rows are claimed again, so
nothing is lost and delivery is at-least-once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
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
        " WHERE published_at IS NULL AND parked_at IS NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
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
    """Count a publish attempt that failed because the bus could not be reached; the rows
    stay pending and are never parked for it (an outage is not the rows' fault)."""
    if ids:
        await conn.execute(
            "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[])", list(ids)
        )


@dataclass(frozen=True, slots=True)
class ParkedRow:
    """A row the bus refused too often, taken out of the pending set."""

    id: int
    event_id: uuid.UUID
    event_type: str
    attempts: int
    last_error: str


async def record_refusals(
    conn: Any, reasons: Mapping[int, str], max_refusals: int
) -> list[ParkedRow]:
    """Count a refusal of each row (the bus answered, but not for this row), keep its
    reason, and park the rows that reached `max_refusals`; returns those parked now."""
    if not reasons:
        return []
    ids = list(reasons)
    rows = await conn.fetch(
        "UPDATE outbox o SET attempts = o.attempts + 1, refusals = o.refusals + 1,"
        " last_error = r.reason,"
        " parked_at = CASE WHEN o.refusals + 1 >= $3 THEN now() END"
        " FROM unnest($1::bigint[], $2::text[]) AS r(id, reason)"
        " WHERE o.id = r.id"
        " RETURNING o.id, o.event_id, o.event_type, o.attempts, o.last_error,"
        " o.parked_at IS NOT NULL AS parked",
        ids,
        [reasons[i][:1000] for i in ids],
        max_refusals,
    )
    return [
        ParkedRow(r["id"], r["event_id"], r["event_type"], r["attempts"], r["last_error"])
        for r in rows
        if r["parked"]
    ]


async def parked_count(conn: Any) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL"))


async def requeue_parked(conn: Any) -> int:
    """Put every parked row back in the pending set with fresh refusals (after a fix)."""
    status = await conn.execute(
        "UPDATE outbox SET parked_at = NULL, refusals = 0 WHERE parked_at IS NOT NULL"
    )
    return int(status.split()[-1])


async def lag_seconds(conn: Any) -> float:
    """Age of the oldest unpublished row in seconds (0 when nothing is pending)."""
    value = await conn.fetchval(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8"
        " FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
    )
    return float(value or 0.0)


async def pending_count(conn: Any) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL"
        )
    )


async def purge_published(conn: Any, older_than_seconds: float) -> int:
    """Delete published rows older than the horizon; returns how many went."""
    status = await conn.execute(
        "DELETE FROM outbox WHERE published_at IS NOT NULL"
        " AND published_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(status.split()[-1])
