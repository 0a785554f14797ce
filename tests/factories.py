"""Realistic events and SQS messages for tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from typing import Any, TypedDict, Unpack

import orjson

from contracts.events import (
    CommentCreated,
    ConnectionAccepted,
    ConnectionRequested,
    Envelope,
    PostCreated,
    UserProfileUpdated,
    new_envelope,
    utcnow,
)

_counter = itertools.count(1)


class EnvelopeFields(TypedDict, total=False):
    """What every builder passes on to `new_envelope`: left out, it gets a fresh value."""

    event_id: uuid.UUID | None
    correlation_id: str | None
    occurred_at: datetime | None
    producer: str


def post_created(
    *,
    post_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    **envelope: Unpack[EnvelopeFields],
) -> Envelope:
    """A PostCreated; without `created_at`, the post is created when the event occurred."""
    envelope["occurred_at"] = envelope.get("occurred_at") or utcnow()
    payload = PostCreated(
        post_id=post_id or uuid.uuid4(),
        author_id=author_id or uuid.uuid4(),
        created_at=created_at or envelope["occurred_at"],
    )
    return new_envelope(payload, **envelope)


def profile_updated(
    *,
    user_id: uuid.UUID | None = None,
    version: int | None = None,
    updated_at: datetime | None = None,
    **envelope: Unpack[EnvelopeFields],
) -> Envelope:
    payload = UserProfileUpdated(
        user_id=user_id or uuid.uuid4(), updated_at=updated_at or utcnow(), version=version
    )
    return new_envelope(payload, **envelope)


def connection_requested(
    *,
    connection_id: uuid.UUID | None = None,
    requester_id: uuid.UUID | None = None,
    addressee_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    **envelope: Unpack[EnvelopeFields],
) -> Envelope:
    payload = ConnectionRequested(
        connection_id=connection_id or uuid.uuid4(),
        requester_id=requester_id or uuid.uuid4(),
        addressee_id=addressee_id or uuid.uuid4(),
        created_at=created_at or utcnow(),
    )
    return new_envelope(payload, **envelope)


def connection_accepted(
    *,
    connection_id: uuid.UUID | None = None,
    requester_id: uuid.UUID | None = None,
    addressee_id: uuid.UUID | None = None,
    accepted_at: datetime | None = None,
    **envelope: Unpack[EnvelopeFields],
) -> Envelope:
    payload = ConnectionAccepted(
        connection_id=connection_id or uuid.uuid4(),
        requester_id=requester_id or uuid.uuid4(),
        addressee_id=addressee_id or uuid.uuid4(),
        accepted_at=accepted_at or utcnow(),
    )
    return new_envelope(payload, **envelope)


def comment_created(
    *,
    comment_id: uuid.UUID | None = None,
    post_id: uuid.UUID | None = None,
    author_id: uuid.UUID | None = None,
    post_author_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    **envelope: Unpack[EnvelopeFields],
) -> Envelope:
    payload = CommentCreated(
        comment_id=comment_id or uuid.uuid4(),
        post_id=post_id or uuid.uuid4(),
        author_id=author_id or uuid.uuid4(),
        post_author_id=post_author_id or uuid.uuid4(),
        created_at=created_at or utcnow(),
    )
    return new_envelope(payload, **envelope)


def sns_notification(envelope: Envelope, topic_arn: str = "arn:aws:sns:us-east-1:1:t") -> bytes:
    """The body SQS holds when a subscription does not use raw delivery."""
    return orjson.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": envelope.to_json().decode(),
            "Timestamp": "2026-11-29T10:00:00.000Z",
            "MessageAttributes": {
                k: {"Type": "String", "Value": v} for k, v in envelope.attributes().items()
            },
        }
    )


def sqs_message(
    *,
    body: str | bytes | Envelope | None = None,
    receive_count: int = 1,
    message_id: str | None = None,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One entry of a ReceiveMessage response, as aiobotocore returns it."""
    if body is None:
        body = post_created()
    if isinstance(body, Envelope):
        attributes = {**body.attributes(), **(attributes or {})}
        body = body.to_json()
    text = body.decode() if isinstance(body, bytes) else body
    n = next(_counter)
    return {
        "MessageId": message_id or str(uuid.uuid4()),
        "ReceiptHandle": f"receipt-{n}-{uuid.uuid4().hex}",
        "Body": text,
        "Attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795950000000",
        },
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()
        },
    }
