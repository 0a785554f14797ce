"""What the API tells its operators: a JSON line per request, request metrics by
operation, and a readiness check of its dependencies.

Logs never carry a body, a query string, variables or a header other than the
correlation id: bodies and variables carry passwords, headers carry tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.tracing import CORRELATION_HEADER, CORRELATION_LIMIT
from contracts.metrics import API_OPERATION_DURATION, API_OPERATIONS
from contracts.outcomes import Probe

log = structlog.get_logger("api")

# A dependency that does not answer within this is not ready.
PROBE_TIMEOUT_SECONDS = 1.0


class RequestLog:
    """One INFO line per HTTP request: method, path, status, duration, correlation id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before it starts one

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "http request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                durationMs=round((time.perf_counter() - started) * 1000, 2),
                correlationId=_correlation(scope),
            )


def _correlation(scope: Scope) -> str | None:
    correlation = Headers(scope=scope).get(CORRELATION_HEADER)
    return correlation[:CORRELATION_LIMIT] if correlation else None


def operation_label(fields: list[str]) -> str:
    """The `operation` label of a request: its root field, a bounded set (the schema's
    fields), never the client's free-form operation name."""
    distinct = set(fields)
    if not distinct:
        return "none"
    return fields[0] if len(distinct) == 1 else "several"


def record_operation(fields: list[str], status: int, seconds: float) -> None:
    """Count one GraphQL operation and its duration, by root field and status class."""
    operation = operation_label(fields)
    API_OPERATIONS.labels(operation, f"{status // 100}xx").inc()
    API_OPERATION_DURATION.labels(operation).observe(seconds)


def readiness(probes: Mapping[str, Probe]) -> Any:
    """`/readyz`: 200 when every dependency answers within PROBE_TIMEOUT_SECONDS, else
    503 naming the ones that did not (the body is for people; probes read the status)."""

    async def readyz(_: Request) -> Response:
        results = await asyncio.gather(*(_answers(probe) for probe in probes.values()))
        ready = all(results)
        states = zip(probes, results, strict=True)
        dependencies = {name: "up" if up else "down" for name, up in states}
        body = {"ready": ready, "dependencies": dependencies}
        return JSONResponse(body, status_code=200 if ready else 503)

    return readyz


async def _answers(probe: Probe) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await probe()
    except Exception:
        return False  # whatever the failure, the dependency is not usable now
    return True
