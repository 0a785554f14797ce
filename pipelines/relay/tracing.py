"""The relay's publish spans (docs/tracing.md): one per outbox row, under the span that wrote it.

The API writes the W3C trace context of its outbox write into the envelope
(`traceparent`, `tracestate`). Before a publish, each row gets a PRODUCER span
whose parent is that context, and the row's body is rewritten to carry the
publish span's own context instead, so the message attributes and Kafka headers
built from the envelope (`Envelope.attributes`) name the publish as the
consumer's parent. The body is edited as JSON, not re-modelled, so fields this
version does not know survive. Used only when tracing is on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from contracts import tracing
from contracts.tracing import TRACE_KEYS, TRACESTATE
from pipelines.relay.ports import PublishResult
from store.outbox import OutboxRow


class PublishSpans:
    """The spans of one publish call: started with `start`, ended with `end`."""

    def __init__(self, rows: list[OutboxRow], spans: dict[int, Span]) -> None:
        self.rows = rows
        self._spans = spans

    @classmethod
    def start(cls, rows: Sequence[OutboxRow]) -> PublishSpans:
        traced: list[OutboxRow] = []
        spans: dict[int, Span] = {}
        for row in rows:
            body = _object(row.body)
            span = _start(row, body) if body is not None else None
            if span is None or body is None:
                traced.append(row)  # undecodable: the publisher refuses it as before
                continue
            spans[row.id] = span
            body.pop(TRACESTATE, None)
            body.update(tracing.carrier(span))
            traced.append(dataclasses.replace(row, body=orjson.dumps(body).decode()))
        return cls(traced, spans)

    def end(self, result: PublishResult | None) -> None:
        """End every span, as an error when its row did not go out (or the call raised)."""
        for row_id, span in self._spans.items():
            if result is None:
                span.set_status(Status(StatusCode.ERROR, "publish raised"))
            elif row_id in result.refused:
                span.set_status(Status(StatusCode.ERROR, f"refused: {result.refused[row_id]}"))
            elif row_id in result.unsent:
                span.set_status(Status(StatusCode.ERROR, "unsent: the bus did not take it"))
            span.end()


def _object(body: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _start(row: OutboxRow, body: dict[str, Any]) -> Span | None:
    carried = {k: v for k in TRACE_KEYS if isinstance(v := body.get(k), str)}
    correlation = body.get("correlationId")
    return tracing.start_span(
        "relay publish",
        kind=SpanKind.PRODUCER,
        parent=tracing.remote_context(carried),
        correlation=correlation if isinstance(correlation, str) else str(row.event_id),
        attributes={
            "messaging.operation.type": "send",
            "messaging.message.id": str(row.event_id),
            "socialpipe.event_type": row.event_type,
            "socialpipe.outbox_id": row.id,
        },
    )
