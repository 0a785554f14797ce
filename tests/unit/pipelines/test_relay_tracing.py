"""The relay's publish spans: a child of the outbox write, named in what is sent on."""

from __future__ import annotations

import dataclasses
import uuid

import orjson
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from contracts import tracing
from contracts.events import decode_body
from pipelines.relay.ports import PublishResult
from pipelines.relay.tracing import PublishSpans
from store.outbox import OutboxRow
from tests.factories import post_created


def row(row_id: int, body: str) -> OutboxRow:
    return OutboxRow(row_id, uuid.uuid4(), "PostCreated", "key", body, 0)


def test_each_row_is_published_under_a_span_child_of_the_one_that_wrote_it(
    spans: InMemorySpanExporter,
) -> None:
    # GIVEN a row written inside a span, with a field this version does not know
    with tracing.span("outbox write") as written:
        body = orjson.loads(post_created(correlation_id="c-1").to_json())
        body.update(tracing.carrier(), futureField=1)
    traced_row = row(1, orjson.dumps(body).decode())
    # WHEN the relay starts its publish spans and the row goes out
    publish = PublishSpans.start([traced_row, row(2, "not json")])
    publish.end(PublishResult(refused={}, unsent=frozenset()))
    # THEN the publish span is the writer's child and the body now names the publish span
    (sent, untouched) = publish.rows
    span = {s.name: s for s in spans.get_finished_spans()}["relay publish"]
    assert written is not None and span.parent is not None
    assert span.parent.span_id == written.get_span_context().span_id
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None and span.attributes["correlation.id"] == "c-1"
    envelope = decode_body(sent.body)
    assert envelope.traceparent is not None
    assert envelope.traceparent.split("-")[2] == format(span.context.span_id, "016x")
    assert envelope.attributes()["traceparent"] == envelope.traceparent
    assert orjson.loads(sent.body)["futureField"] == 1
    # AND a body that cannot be read is left as it was, for the publisher to refuse
    assert untouched == row(2, "not json") or untouched.body == "not json"


def test_a_refused_row_ends_its_span_as_an_error(spans: InMemorySpanExporter) -> None:
    refused = row(7, post_created().to_json().decode())
    publish = PublishSpans.start([refused])
    publish.end(PublishResult(refused={7: "TooLarge: too large"}))
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "TooLarge" in (span.status.description or "")
    assert dataclasses.replace(publish.rows[0], body=refused.body) == refused
