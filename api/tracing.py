"""The API's request span (docs/tracing.md): one SERVER span per HTTP request.

A caller's `traceparent`/`tracestate` headers are continued; otherwise each
request starts a trace. The request's correlation id (`X-Correlation-ID`, made
here when the caller sent none, so the resolvers and this span name the same
one) is on the span. Installed by `create_app` only when tracing is on.
"""

from __future__ import annotations

import uuid
from typing import Final

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import tracing
from contracts.tracing import TRACE_KEYS

CORRELATION_HEADER: Final = "x-correlation-id"
# As long as the API keeps a correlation id (`api.app.GraphQLApp.get_context`).
CORRELATION_LIMIT: Final = 128


class RequestSpans:
    """ASGI middleware wrapping each HTTP request in a SERVER span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        correlation = headers.get(CORRELATION_HEADER)
        if not correlation:
            correlation = str(uuid.uuid4())
            raw = [*scope["headers"], (CORRELATION_HEADER.encode(), correlation.encode())]
            scope = {**scope, "headers": raw}
        carried = {key: value for key in TRACE_KEYS if (value := headers.get(key))}
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        with tracing.span(
            f"{method} {path}",
            kind=SpanKind.SERVER,
            parent=tracing.remote_context(carried),
            correlation=correlation[:CORRELATION_LIMIT],
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            await self.app(scope, receive, _status_recorder(send, span))


def _status_recorder(send: Send, span: Span | None) -> Send:
    async def recording(message: Message) -> None:
        if span is not None and message["type"] == "http.response.start":
            status = int(message["status"])
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        await send(message)

    return recording


def trace_requests(app: Starlette) -> None:
    """Wrap `app` in `RequestSpans` when tracing is on, outside every other middleware,
    so the request log line (`api.observe.RequestLog`) is written inside the span and
    carries its trace id and the correlation id made here."""
    if tracing.active():
        app.add_middleware(RequestSpans)
