"""Spans across the chain (docs/tracing.md): the helpers every layer calls.

Tracing is off unless `config.tracing` installs a tracer at start-up. Off, every
helper here answers from one check of a module global: `span` returns one shared
no-op context manager and `carrier` an empty dict, so no span object is ever
created and the hot paths pay a function call.

Trace context crosses process boundaries as W3C trace context (`traceparent`,
`tracestate`): in the outbox row's envelope, in SNS/SQS message attributes and
in Kafka headers. The propagator is used explicitly, never the global one, so
nothing depends on what the SDK read from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

# The span attribute holding the chain's correlation id (the logs' `correlationId`).
CORRELATION_ATTRIBUTE: Final = "correlation.id"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
TRACE_KEYS: Final = (TRACEPARENT, TRACESTATE)

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NOTHING: Final[AbstractContextManager[None]] = nullcontext()
_tracer: Tracer | None = None

Attributes = Mapping[str, AttributeValue]


def install(tracer: Tracer | None) -> None:
    """Turn tracing on with `tracer`, or off with None (`config.tracing` calls this)."""
    global _tracer
    _tracer = tracer


def active() -> bool:
    """Whether spans are being recorded in this process."""
    return _tracer is not None


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    correlation: str | None = None,
    attributes: Attributes | None = None,
    parent: Context | None = None,
    links: Sequence[Link] | None = None,
) -> AbstractContextManager[Span | None]:
    """A span made current for the block, or a no-op when tracing is off.

    `parent` None means the current span; an empty `Context()` starts a new trace.
    An exception leaving the block is recorded and marks the span as an error.
    """
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    values = dict(attributes) if attributes else {}
    if correlation:
        values[CORRELATION_ATTRIBUTE] = correlation
    return tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=values, links=links
    )


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    correlation: str | None = None,
    attributes: Attributes | None = None,
    parent: Context | None = None,
) -> Span | None:
    """A started span that is not made current (the caller ends it), or None when off."""
    tracer = _tracer
    if tracer is None:
        return None
    values = dict(attributes) if attributes else {}
    if correlation:
        values[CORRELATION_ATTRIBUTE] = correlation
    return tracer.start_span(name, context=parent, kind=kind, attributes=values)


def carrier(of: Span | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`, when there is one) of `of` or of the current span.

    Empty when tracing is off or no span is recording.
    """
    if _tracer is None:
        return {}
    out: dict[str, str] = {}
    context = trace.set_span_in_context(of) if of is not None else None
    _PROPAGATOR.inject(out, context=context)
    return out


def remote_context(values: Mapping[str, str]) -> Context:
    """The context a `traceparent`/`tracestate` pair names; an empty one (a new trace)
    when the pair is missing or malformed."""
    if not values.get(TRACEPARENT):
        return Context()
    return _PROPAGATOR.extract(values, context=Context())


def link_to(values: Mapping[str, str]) -> Link | None:
    """A link to the span a `traceparent` names, or None when it names none."""
    context = trace.get_current_span(remote_context(values)).get_span_context()
    return Link(context) if context.is_valid else None


def current_ids() -> tuple[str, str] | None:
    """The current trace id and span id in hex, or None outside a recording span."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
