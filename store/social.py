"""Connections and direct messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class PendingRequestExists(Exception):
    """A request between the two users is already pending."""


class AlreadyConnected(Exception):
    """The two users are already connected."""


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    id: uuid.UUID
    requester_id: uuid.UUID
    addressee_id: uuid.UUID
    status: str
    created_at: datetime
    responded_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: uuid.UUID
    sender_id: uuid.UUID
    recipient_id: uuid.UUID
    body: str
    created_at: datetime


_CONN_COLS = "id, requester_id, addressee_id, status, created_at, responded_at"

_PAIR = "(LEAST(requester_id, addressee_id)), (GREATEST(requester_id, addressee_id))"
_INSERT_UNLESS_LIVE = (
    f"INSERT INTO connections (requester_id, addressee_id) VALUES ($1, $2)"
    f" ON CONFLICT ({_PAIR}) WHERE status IN ('pending', 'accepted') DO NOTHING"
    f" RETURNING {_CONN_COLS}"
)
_LIVE_STATUS = (
    "SELECT status FROM connections"
    " WHERE LEAST(requester_id, addressee_id) = LEAST($1::uuid, $2::uuid)"
    " AND GREATEST(requester_id, addressee_id) = GREATEST($1::uuid, $2::uuid)"
    " AND status IN ('pending', 'accepted')"
)
# A conflicting row can be declined between the insert and the look-up; a few
# tries settle it (each try waits for the transaction it conflicts with).
_INSERT_ATTEMPTS = 3


async def user_exists(conn: Any, user_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id))


async def are_connected(conn: Any, a: uuid.UUID, b: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM connections WHERE status = 'accepted' AND"
            " ((requester_id = $1 AND addressee_id = $2)"
            " OR (requester_id = $2 AND addressee_id = $1)))",
            a,
            b,
        )
    )


async def request_connection(
    conn: Any, requester: uuid.UUID, addressee: uuid.UUID
) -> ConnectionRow:
    """Insert a pending request, unless the pair already has a live (pending or accepted)
    row in either direction: the unique index `connections_one_live_per_pair` decides,
    even between concurrent transactions (a racing insert waits for the other to end).

    Raises `PendingRequestExists` or `AlreadyConnected`, whichever the pair's live row is.
    """
    for _ in range(_INSERT_ATTEMPTS):
        row = await conn.fetchrow(_INSERT_UNLESS_LIVE, requester, addressee)
        if row is not None:
            return ConnectionRow(**dict(row))
        status = await conn.fetchval(_LIVE_STATUS, requester, addressee)
        if status == "accepted":
            raise AlreadyConnected()
        if status == "pending":
            raise PendingRequestExists()
        # The conflicting request was declined in between: the pair is free again.
    raise PendingRequestExists()


async def connection_for_update(conn: Any, connection_id: uuid.UUID) -> ConnectionRow | None:
    row = await conn.fetchrow(
        f"SELECT {_CONN_COLS} FROM connections WHERE id = $1 FOR UPDATE", connection_id
    )
    return ConnectionRow(**dict(row)) if row else None


async def respond(conn: Any, connection_id: uuid.UUID, accept: bool) -> ConnectionRow:
    row = await conn.fetchrow(
        f"UPDATE connections SET status = $2, responded_at = now() WHERE id = $1"
        f" RETURNING {_CONN_COLS}",
        connection_id,
        "accepted" if accept else "declined",
    )
    return ConnectionRow(**dict(row))


async def send_message(conn: Any, sender: uuid.UUID, recipient: uuid.UUID, body: str) -> MessageRow:
    row = await conn.fetchrow(
        "INSERT INTO messages (sender_id, recipient_id, body) VALUES ($1, $2, $3)"
        " RETURNING id, sender_id, recipient_id, body, created_at",
        sender,
        recipient,
        body,
    )
    return MessageRow(**dict(row))


async def messages_between(
    conn: Any, a: uuid.UUID, b: uuid.UUID, limit: int = 100
) -> list[MessageRow]:
    rows = await conn.fetch(
        "SELECT id, sender_id, recipient_id, body, created_at FROM messages"
        " WHERE LEAST(sender_id, recipient_id) = LEAST($1::uuid, $2::uuid)"
        " AND GREATEST(sender_id, recipient_id) = GREATEST($1::uuid, $2::uuid)"
        " ORDER BY created_at DESC, id DESC LIMIT $3",
        a,
        b,
        limit,
    )
    return [MessageRow(**dict(r)) for r in rows]


async def pending_request(conn: Any, a: uuid.UUID, b: uuid.UUID) -> ConnectionRow | None:
    """The pending request between `a` and `b`, in either direction, if any."""
    row = await conn.fetchrow(
        f"SELECT {_CONN_COLS} FROM connections WHERE status = 'pending' AND"
        " ((requester_id = $1 AND addressee_id = $2) OR (requester_id = $2 AND addressee_id = $1))"
        " LIMIT 1",
        a,
        b,
    )
    return ConnectionRow(**dict(row)) if row else None
