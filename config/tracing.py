"""Tracing set-up for one process (docs/tracing.md).

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set: then spans are batched and sent
over OTLP/HTTP to `<endpoint>/v1/traces`. Everything the SDK would otherwise read
from its own environment variables (resource, sampler, batch sizes, exporter
endpoint and timeout) is given here from `Settings`, so the one settings object
stays the one place configuration comes from. Tests pass their own exporter
(the SDK's in-memory one) and get the same provider, synchronously exported.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, TypeVar, cast

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from config.settings import Settings
from contracts import tracing
from contracts.tracing import CORRELATION_ATTRIBUTE

SCOPE: Final = "socialpipe"
EXPORT_TIMEOUT_SECONDS: Final = 10.0
# The SDK's own defaults, given explicitly so its environment variables are not read.
SPAN_LIMITS: Final = SpanLimits(
    max_attributes=128,
    max_events=128,
    max_links=128,
    max_event_attributes=128,
    max_link_attributes=128,
    max_attribute_length=4096,
)

log = structlog.get_logger("config.tracing")
Port = TypeVar("Port")


class CorrelationProcessor(SpanProcessor):
    """Puts the correlation id on every span that was not given one.

    From the local parent span when it has one, else from the log context
    (`correlationId` bound by the API and the consumer runtimes), so a span and
    the log lines written inside it name the same correlation id.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.attributes and CORRELATION_ATTRIBUTE in span.attributes:
            return
        parent = trace.get_current_span(parent_context)
        inherited = getattr(parent, "attributes", None) or {}
        value = inherited.get(CORRELATION_ATTRIBUTE)
        if value is None:
            value = structlog.contextvars.get_contextvars().get("correlationId")
        if value is not None:
            span.set_attribute(CORRELATION_ATTRIBUTE, value)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _version() -> str:
    try:
        return version("socialpipe")
    except PackageNotFoundError:  # a checkout run without being installed
        return "unknown"


def build_provider(
    settings: Settings, service_name: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """The provider `settings` ask for, or None when tracing is off.

    With `exporter` (tests), spans go to it synchronously whatever the endpoint.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if exporter is None and endpoint is None:
        return None
    resource = Resource(
        {
            "service.name": service_name,
            "service.namespace": "socialpipe",
            "service.version": _version(),
            "vcs.ref.head.revision": settings.build_commit,
        }
    )
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
        resource=resource,
        span_limits=SPAN_LIMITS,
    )
    provider.add_span_processor(CorrelationProcessor())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider
    otlp = OTLPSpanExporter(
        endpoint=f"{str(endpoint).rstrip('/')}/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            otlp,
            max_queue_size=2048,
            schedule_delay_millis=5000,
            max_export_batch_size=512,
            export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000,
        )
    )
    return provider


def start_tracing(
    settings: Settings, service_name: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Turn tracing on for this process when configured; once, at start-up.

    Not configured, it changes nothing: tracing stays off (or as a test set it).
    The provider flushes and shuts down at interpreter exit.
    """
    provider = build_provider(settings, service_name, exporter)
    if provider is None:
        return None
    tracing.install(provider.get_tracer(SCOPE))
    if exporter is None:
        log.info("tracing on", endpoint=settings.otel_exporter_otlp_endpoint)
    return provider


def stop_tracing(provider: TracerProvider | None) -> None:
    """Turn tracing off and flush what `provider` still holds (tests, orderly shutdown)."""
    tracing.install(None)
    if provider is not None:
        provider.shutdown()


def traced(port: Port, system: str, *methods: str) -> Port:
    """`port` with each call of `methods` in a CLIENT span named `<system> <method>`.

    The composition roots wrap the stores' write ports with this (the feed lists,
    the search index, notification rows and counters). With tracing off it returns
    `port` itself, so the handlers call their adapters directly as before.
    """
    if not tracing.active():
        return port
    return cast(Port, _TracedPort(port, system, frozenset(methods)))


class _TracedPort:
    """Forwards every attribute to the adapter; the named coroutine methods run in spans."""

    def __init__(self, inner: Any, system: str, methods: frozenset[str]) -> None:
        self._inner = inner
        self._system = system
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._methods:
            return value
        return _in_span(value, f"{self._system} {name}", self._system)


def _in_span(
    call: Callable[..., Awaitable[Any]], name: str, system: str
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def spanned(*args: Any, **kwargs: Any) -> Any:
        with tracing.span(name, kind=SpanKind.CLIENT, attributes={"db.system.name": system}):
            return await call(*args, **kwargs)

    return spanned
