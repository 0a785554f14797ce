"""Tracing: off by default and free when off; on, spans carry correlation ids and logs trace ids."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config.logging import configure_logging
from config.settings import SettingsError, load_settings
from config.tracing import build_provider, start_tracing, traced
from contracts import tracing
from contracts.tracing import CORRELATION_ATTRIBUTE
from tests.factories import post_created

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    hooks = (sys.excepthook, threading.excepthook)
    out = io.StringIO()
    configure_logging("worker-feed", "INFO", stream=out)
    yield out
    sys.excepthook, threading.excepthook = hooks


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


class Store:
    async def write(self, value: int) -> int:
        return value * 2


def test_off_by_default_no_span_is_made_and_nothing_is_carried() -> None:
    # GIVEN no OTEL_EXPORTER_OTLP_ENDPOINT WHEN a process starts
    settings = load_settings(otel_exporter_otlp_endpoint=None)
    assert start_tracing(settings, "worker-feed") is None
    # THEN every helper answers with the shared no-op
    assert not tracing.active()
    assert tracing.span("a") is tracing.span("b")
    with tracing.span("a") as span:
        assert span is None
        assert tracing.carrier() == {}
        assert tracing.current_ids() is None
    assert tracing.start_span("a") is None
    # AND the composition roots keep the adapters themselves
    store = Store()
    assert traced(store, "redis", "write") is store


def test_an_envelope_without_trace_context_has_the_same_body_and_attributes() -> None:
    envelope = post_created()
    assert b"traceparent" not in envelope.to_json()
    assert set(envelope.attributes()) == {"eventType", "schemaVersion", "correlationId"}
    # AND with one, the body and the attributes carry it
    carried = envelope.model_copy(update={"traceparent": TRACEPARENT})
    assert orjson.loads(carried.to_json())["traceparent"] == TRACEPARENT
    assert carried.attributes()["traceparent"] == TRACEPARENT


def test_an_endpoint_that_is_not_a_url_is_refused_in_one_sentence() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(otel_exporter_otlp_endpoint="collector:4318")
    assert str(caught.value).startswith("Invalid OTEL_EXPORTER_OTLP_ENDPOINT: expected an http")


def test_an_endpoint_gets_a_batched_otlp_exporter_on_its_traces_path() -> None:
    settings = load_settings(otel_exporter_otlp_endpoint="http://collector:4318/")
    provider = build_provider(settings, "relay")
    assert provider is not None
    try:
        processors: Any = provider._active_span_processor._span_processors
        names = [type(p).__name__ for p in processors]
        assert names == ["CorrelationProcessor", "BatchSpanProcessor"]
        exporter = processors[1]._batch_processor._exporter
        assert exporter._endpoint == "http://collector:4318/v1/traces"
        assert provider.resource.attributes["service.name"] == "relay"
    finally:
        provider.shutdown()


async def test_every_span_names_the_correlation_id_of_its_parent_or_its_log_context(
    spans: InMemorySpanExporter,
) -> None:
    # GIVEN a span given a correlation id, and a store port wrapped for tracing
    store = traced(Store(), "redis", "write")
    with tracing.span("handle", correlation="corr-1"):
        # WHEN a port call runs inside it
        assert await store.write(2) == 4
    with structlog.contextvars.bound_contextvars(correlationId="corr-2"), tracing.span("bare"):
        pass
    # THEN the child span inherits the id and a bare span takes the log context's
    found = {s.name: s for s in spans.get_finished_spans()}
    assert found["redis write"].attributes is not None
    assert found["redis write"].attributes[CORRELATION_ATTRIBUTE] == "corr-1"
    assert found["redis write"].parent is not None
    assert found["redis write"].parent.span_id == found["handle"].context.span_id
    assert found["bare"].attributes is not None
    assert found["bare"].attributes[CORRELATION_ATTRIBUTE] == "corr-2"


def test_a_log_line_inside_a_span_carries_its_trace_and_span_ids(
    spans: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    log = structlog.get_logger("test")
    with tracing.span("handle") as span:
        log.info("inside")
    log.info("outside")
    assert span is not None
    inside, outside = parsed(log_lines)
    assert inside["traceId"] == format(span.get_span_context().trace_id, "032x")
    assert inside["spanId"] == format(span.get_span_context().span_id, "016x")
    assert "traceId" not in outside


def test_a_carried_context_continues_its_trace(spans: InMemorySpanExporter) -> None:
    parent = tracing.remote_context({"traceparent": TRACEPARENT})
    with tracing.span("child", parent=parent):
        carried = tracing.carrier()
    assert carried["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert carried["traceparent"] != TRACEPARENT
    # AND a malformed one starts a new trace instead of failing
    with tracing.span("fresh", parent=tracing.remote_context({"traceparent": "junk"})):
        assert "0af7651916cd43dd8448eb211c80319c" not in tracing.carrier()["traceparent"]
