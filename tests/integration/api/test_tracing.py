"""With tracing on, each API request is a SERVER span, and its log line names the trace."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.logging import configure_logging
from contracts.tracing import CORRELATION_ATTRIBUTE
from tests.integration.api.client import Api

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    hooks = (sys.excepthook, threading.excepthook)
    out = io.StringIO()
    configure_logging("api", "INFO", stream=out)
    yield out
    sys.excepthook, threading.excepthook = hooks


async def test_a_request_continues_the_callers_trace_and_its_log_line_names_it(
    spans: InMemorySpanExporter, api: Api, log_stream: io.StringIO
) -> None:
    # WHEN a caller in a trace of its own sends a request without a correlation id
    response = await api.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"traceparent": CALLER}
    )
    assert response.status_code == 200
    # THEN the request is a SERVER span in the caller's trace, with a correlation id made up
    (span,) = [s for s in spans.get_finished_spans() if s.name == "POST /graphql"]
    assert span.kind is SpanKind.SERVER
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    correlation = span.attributes[CORRELATION_ATTRIBUTE]
    # AND the request's log line carries the span's trace and that same correlation id
    lines = [orjson.loads(line) for line in log_stream.getvalue().splitlines()]
    (line,) = [entry for entry in lines if entry["message"] == "http request"]
    assert line["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["spanId"] == format(span.context.span_id, "016x")
    assert line["correlationId"] == correlation
