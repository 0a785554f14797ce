"""Which notification an event produces: a pure decision, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final, Literal

from contracts.events import CommentCreated, ConnectionAccepted, ConnectionRequested, Envelope

Kind = Literal["connection_requested", "connection_accepted", "comment_created"]

NOTIFYING_EVENTS: Final = frozenset({"ConnectionRequested", "ConnectionAccepted", "CommentCreated"})


@dataclass(frozen=True, slots=True)
class Notification:
    """One row to write: `user_id` is told that `actor_id` did `kind` to `subject_id`.

    `source_id` is the connection or comment the row tells about: with `kind` it
    is the key `reconcile notifications` shares with the live worker, so neither
    writes a second row for one source.
    """

    event_id: uuid.UUID
    user_id: uuid.UUID
    kind: Kind
    actor_id: uuid.UUID
    subject_id: uuid.UUID
    source_id: uuid.UUID


def plan_notification(envelope: Envelope) -> Notification | None:
    """The notification an event calls for, or None (other events, one's own comment)."""
    p = envelope.payload
    eid = envelope.event_id
    if isinstance(p, ConnectionRequested):
        return Notification(
            eid,
            p.addressee_id,
            "connection_requested",
            p.requester_id,
            p.connection_id,
            p.connection_id,
        )
    if isinstance(p, ConnectionAccepted):
        return Notification(
            eid,
            p.requester_id,
            "connection_accepted",
            p.addressee_id,
            p.connection_id,
            p.connection_id,
        )
    if isinstance(p, CommentCreated) and p.author_id != p.post_author_id:
        return Notification(
            eid, p.post_author_id, "comment_created", p.author_id, p.post_id, p.comment_id
        )
    return None
