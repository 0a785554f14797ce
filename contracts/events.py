"""The event envelope (docs/architecture.md#events) and its payloads.

Bodies become these models at the transport edge; inside, only typed objects
travel. Readers ignore unknown fields, so producers may add fields freely; a
new *major* schema version is a permanent failure for a reader that does not
know it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_serializer

from contracts.errors import (
    InvalidEvent,
    MalformedMessage,
    MessageTooLarge,
    UnsupportedSchemaVersion,
)
from contracts.tracing import TRACE_KEYS

MAX_BODY_BYTES: Final = 256 * 1024
SCHEMA_VERSION: Final = "1.0"
SUPPORTED_MAJOR: Final = 1

EventType = Literal[
    "PostCreated",
    "UserProfileUpdated",
    "ConnectionRequested",
    "ConnectionAccepted",
    "CommentCreated",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, as the contract shows."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class PostCreated(_Model):
    post_id: uuid.UUID = Field(alias="postId")
    author_id: uuid.UUID = Field(alias="authorId")
    created_at: datetime = Field(alias="createdAt")


class UserProfileUpdated(_Model):
    user_id: uuid.UUID = Field(alias="userId")
    updated_at: datetime = Field(alias="updatedAt")
    version: int | None = None


class ConnectionRequested(_Model):
    connection_id: uuid.UUID = Field(alias="connectionId")
    requester_id: uuid.UUID = Field(alias="requesterId")
    addressee_id: uuid.UUID = Field(alias="addresseeId")
    created_at: datetime = Field(alias="createdAt")


class ConnectionAccepted(_Model):
    connection_id: uuid.UUID = Field(alias="connectionId")
    requester_id: uuid.UUID = Field(alias="requesterId")
    addressee_id: uuid.UUID = Field(alias="addresseeId")
    accepted_at: datetime = Field(alias="acceptedAt")


class CommentCreated(_Model):
    comment_id: uuid.UUID = Field(alias="commentId")
    post_id: uuid.UUID = Field(alias="postId")
    author_id: uuid.UUID = Field(alias="authorId")
    post_author_id: uuid.UUID = Field(alias="postAuthorId")
    created_at: datetime = Field(alias="createdAt")


Payload = (
    PostCreated | UserProfileUpdated | ConnectionRequested | ConnectionAccepted | CommentCreated
)

PAYLOAD_TYPES: Final[dict[str, type[Payload]]] = {
    "PostCreated": PostCreated,
    "UserProfileUpdated": UserProfileUpdated,
    "ConnectionRequested": ConnectionRequested,
    "ConnectionAccepted": ConnectionAccepted,
    "CommentCreated": CommentCreated,
}


class Envelope(_Model):
    """One event. `payload` is already parsed into the model of `event_type`."""

    event_id: uuid.UUID = Field(alias="eventId")
    event_type: EventType = Field(alias="eventType")
    schema_version: str = Field(alias="schemaVersion")
    occurred_at: datetime = Field(alias="occurredAt")
    correlation_id: str | None = Field(default=None, alias="correlationId")
    producer: str | None = None
    payload: Payload
    # W3C trace context of the span that wrote or last sent the event (docs/tracing.md),
    # as CloudEvents' distributed-tracing extension carries it; absent when untraced.
    traceparent: str | None = None
    tracestate: str | None = None
    # Set by the transport, never read from the body: whether this delivery may
    # follow an earlier one (a receive count above one, a redrive or requeue mark).
    _redelivered: bool = PrivateAttr(default=False)

    @property
    def redelivered(self) -> bool:
        """Whether an earlier delivery of this event may already have had effects."""
        return self._redelivered

    def as_redelivery(self) -> Envelope:
        """A copy marked as a possible redelivery (handlers then take their careful path)."""
        copy = self.model_copy()
        copy._redelivered = True
        return copy

    @field_serializer("occurred_at")
    def _ser_time(self, value: datetime) -> str:
        return format_time(value)

    def to_json(self) -> bytes:
        data = self.model_dump(mode="json", by_alias=True)
        data["payload"] = _payload_json(self.payload)
        for key in TRACE_KEYS:
            if data[key] is None:
                del data[key]
        return orjson.dumps(data)

    def attributes(self) -> dict[str, str]:
        """Transport attributes mirroring the envelope (SNS/SQS or Kafka headers)."""
        return {
            "eventType": self.event_type,
            "schemaVersion": self.schema_version,
            "correlationId": self.correlation_id or str(self.event_id),
            **{key: value for key in TRACE_KEYS if (value := getattr(self, key))},
        }


def _payload_json(payload: Payload) -> dict[str, Any]:
    raw = payload.model_dump(mode="python", by_alias=True)
    return {k: format_time(v) if isinstance(v, datetime) else _plain(v) for k, v in raw.items()}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def new_envelope(
    payload: Payload,
    *,
    producer: str = "api",
    correlation_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
    trace: Mapping[str, str] | None = None,
) -> Envelope:
    """Build an envelope for a payload, naming its type from the payload model.

    `trace` is the W3C trace context (`traceparent`, `tracestate`) it carries, if any.
    """
    event_type = type(payload).__name__
    eid = event_id or uuid.uuid4()
    return Envelope.model_validate(
        {
            "eventId": eid,
            "eventType": event_type,
            "schemaVersion": SCHEMA_VERSION,
            "occurredAt": occurred_at or utcnow(),
            "correlationId": correlation_id or str(eid),
            "producer": producer,
            "payload": payload,
            **(trace or {}),
        }
    )


def decode_body(body: str | bytes) -> Envelope:
    """Parse a raw or SNS-notification body into an `Envelope`.

    Raises a `PermanentError` subclass naming exactly what is wrong.
    """
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise MessageTooLarge(f"Message body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}.")
    data = _load_object(raw)
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return decode_body(data["Message"])
    return parse_envelope(data)


def _load_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"Message body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise MalformedMessage("Message body is not a JSON object.")
    return data


def parse_envelope(data: dict[str, Any]) -> Envelope:
    check_schema_version(data.get("schemaVersion"))
    event_type = data.get("eventType")
    payload_type = PAYLOAD_TYPES.get(event_type) if isinstance(event_type, str) else None
    if payload_type is None:
        raise InvalidEvent(f"Unknown eventType {event_type!r}.", error_type="UnknownEventType")
    try:
        payload = payload_type.model_validate(data.get("payload"))
        return Envelope.model_validate({**data, "payload": payload})
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None


def check_schema_version(version: object) -> None:
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise InvalidEvent(f"schemaVersion {version!r} is not of the form MAJOR.MINOR.")
    major = int(version.split(".")[0])
    if major != SUPPORTED_MAJOR:
        raise UnsupportedSchemaVersion(
            f"schemaVersion {version} has major {major}; this reader supports {SUPPORTED_MAJOR}."
        )


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "Invalid event: " + "; ".join(parts) + "."
