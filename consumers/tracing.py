"""The consumers' spans (docs/tracing.md): a receive span per chunk, a handler span per call.

The parent of a receive span is the publish span named by the message's
`traceparent` (and `tracestate`): an SQS message attribute or a Kafka header,
else the envelope's own copy. A chunk of one message continues that message's
trace; a chunk of several (the search worker's batches) starts its own trace
and links every message's, since one span cannot have several parents. The
handler span is a child of the receive span, and every store call the handler
makes is a child of the handler span. Off, both helpers return a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from consumers.kafka.records import KafkaRecord
from consumers.messages import ReceivedMessage
from contracts import tracing
from contracts.events import Envelope
from contracts.tracing import CORRELATION_ATTRIBUTE, TRACE_KEYS


def received(
    queue: str, decoded: Sequence[tuple[ReceivedMessage | KafkaRecord, Envelope]]
) -> AbstractContextManager[Span | None]:
    """The CONSUMER span of one chunk, current for the handler call inside it."""
    if not tracing.active():
        return tracing.span("")  # the shared no-op
    carriers = [trace_context(message, envelope) for message, envelope in decoded]
    attributes: dict[str, AttributeValue] = {
        "messaging.destination.name": queue,
        "messaging.operation.type": "receive",
        "messaging.batch.message_count": len(decoded),
        CORRELATION_ATTRIBUTE: _correlation([envelope for _, envelope in decoded]),
    }
    if len(carriers) == 1:
        attributes["messaging.message.id"] = str(decoded[0][1].event_id)
        return tracing.span(
            f"receive {queue}",
            kind=SpanKind.CONSUMER,
            parent=tracing.remote_context(carriers[0]),
            attributes=attributes,
        )
    links = [link for carrier in carriers if (link := tracing.link_to(carrier)) is not None]
    return tracing.span(
        f"receive {queue}",
        kind=SpanKind.CONSUMER,
        parent=Context(),
        links=links,
        attributes=attributes,
    )


def handling(queue: str, envelopes: Sequence[Envelope]) -> AbstractContextManager[Span | None]:
    """The span of one handler call, a child of the current (receive) span."""
    if not tracing.active():
        return tracing.span("")
    types = sorted({envelope.event_type for envelope in envelopes})
    return tracing.span(
        f"handle {types[0] if len(types) == 1 else 'events'}",
        attributes={
            "socialpipe.queue": queue,
            "socialpipe.event_types": types,
            "socialpipe.events": len(envelopes),
            CORRELATION_ATTRIBUTE: _correlation(envelopes),
        },
    )


def trace_context(message: ReceivedMessage | KafkaRecord, envelope: Envelope) -> dict[str, str]:
    """`traceparent`/`tracestate` from the transport's attributes, else from the envelope."""
    attributes: Mapping[str, Any] = (
        message.headers if isinstance(message, KafkaRecord) else message.message_attributes
    )
    found = {key: text for key in TRACE_KEYS if (text := _text(attributes.get(key)))}
    if found:
        return found
    return {key: value for key in TRACE_KEYS if (value := getattr(envelope, key))}


def _text(value: Any) -> str | None:
    """A Kafka header's text or an SQS string attribute's `StringValue`."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping) and isinstance(value.get("StringValue"), str):
        return str(value["StringValue"]) or None
    return None


def _correlation(envelopes: Sequence[Envelope]) -> AttributeValue:
    ids = [envelope.correlation_id or str(envelope.event_id) for envelope in envelopes[:10]]
    return ids[0] if len(ids) == 1 else ids
