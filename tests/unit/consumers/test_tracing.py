"""The consumers' spans: a receive span continuing the message's trace, a handler span inside."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from consumers.kafka.records import KafkaRecord
from consumers.messages import ReceivedMessage, dead_letter_attributes
from consumers.tracing import handling, received, trace_context
from tests.factories import post_created, sqs_message

PUBLISHED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
IN_BODY = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


def test_the_message_attribute_wins_over_the_envelope_copy() -> None:
    envelope = post_created().model_copy(update={"traceparent": IN_BODY})
    message = ReceivedMessage.from_sqs(sqs_message(body=envelope))
    assert trace_context(message, envelope) == {"traceparent": IN_BODY}
    message.message_attributes["traceparent"] = {"DataType": "String", "StringValue": PUBLISHED}
    assert trace_context(message, envelope) == {"traceparent": PUBLISHED}


def test_a_kafka_header_carries_the_trace_context_too() -> None:
    envelope = post_created().model_copy(update={"traceparent": IN_BODY})
    record = KafkaRecord(
        topic="social-events",
        partition=0,
        offset=1,
        key=None,
        value=envelope.to_json(),
        headers={"traceparent": PUBLISHED, "tracestate": "k=v"},
        ack=lambda: None,
    )
    assert trace_context(record, envelope) == {"traceparent": PUBLISHED, "tracestate": "k=v"}


def test_one_message_continues_its_trace_and_the_handler_runs_inside(
    spans: InMemorySpanExporter,
) -> None:
    envelope = post_created(correlation_id="c-9")
    message = ReceivedMessage.from_sqs(
        sqs_message(body=envelope, attributes={"traceparent": PUBLISHED})
    )
    with received("feed-fanout", [(message, envelope)]), handling("feed-fanout", [envelope]):
        pass
    found = {s.name: s for s in spans.get_finished_spans()}
    receive, handle = found["receive feed-fanout"], found["handle PostCreated"]
    assert receive.kind is SpanKind.CONSUMER
    assert receive.parent is not None and receive.parent.span_id == 0xB7AD6B7169203331
    assert receive.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert handle.parent is not None and handle.parent.span_id == receive.context.span_id
    assert handle.attributes is not None and handle.attributes["correlation.id"] == "c-9"


def test_a_chunk_of_several_messages_links_each_messages_trace(
    spans: InMemorySpanExporter,
) -> None:
    first, second = post_created(), post_created()
    chunk = [
        (
            ReceivedMessage.from_sqs(
                sqs_message(body=first, attributes={"traceparent": PUBLISHED})
            ),
            first,
        ),
        (ReceivedMessage.from_sqs(sqs_message(body=second)), second),
    ]
    with received("search-indexing", chunk):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None
    assert [link.context.span_id for link in span.links] == [0xB7AD6B7169203331]
    assert span.attributes is not None
    assert list(span.attributes["correlation.id"]) == [  # type: ignore[arg-type]
        first.correlation_id,
        second.correlation_id,
    ]


def test_a_dead_letter_short_of_room_drops_the_trace_context_before_the_events_attributes() -> None:
    # GIVEN a requeued message carrying the event's attributes and a trace context
    envelope = post_created().model_copy(update={"traceparent": PUBLISHED, "tracestate": "k=v"})
    message = ReceivedMessage.from_sqs(
        sqs_message(body=envelope, attributes={"requeuedAt": "2026-12-02T08:00:00.000Z"})
    )
    message.message_attributes = dict(sorted(message.message_attributes.items(), reverse=True))
    # WHEN it is dead-lettered (six failure attributes leave room for four)
    got = dead_letter_attributes(
        message, error_type="E", reason="r", source_queue="q", failed_at=datetime.now(UTC)
    )
    # THEN the event's attributes and the requeue mark are kept, the trace context is not
    kept = set(got) - {"errorType", "errorMessage", "failedAt", "attempts", "sourceQueue"}
    assert kept - {"sourceMessageId"} == {
        "eventType",
        "schemaVersion",
        "correlationId",
        "requeuedAt",
    }
