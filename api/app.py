"""The ASGI application: Strawberry at `/graphql`, plus `/healthz` and `/readyz`.

Expected failures become HTTP statuses here: validation 400 (with `extensions`
`{code, field}`), a malformed request 400 (body, syntax, validation, variables;
413 for a body over the limit), authentication 401, someone else's data 403, a
busy process 503. Only a genuine defect answers 500, and its message is masked.
`/metrics` is not served here: it lives on `METRICS_PORT`, off the public port.
The limits are in `api.limits` (docs/api-limits.md), the media types in `api.http`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from cross_web import HTTPException
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    VariableDefinitionNode,
)
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionContext, ExecutionResult

from api.errors import ApiError, Unauthenticated
from api.guard import RejectUnstorableText
from api.http import (
    GRAPHQL_RESPONSE,
    RequestRejected,
    body_too_large,
    declared_length,
    error_body,
    limited_receive,
    parse_body,
    preferred_media_type,
)
from api.limits import (
    ApiLimits,
    ResolverGate,
    ResolverSlots,
    SearchShares,
    validation_extensions,
)
from api.observe import RequestLog, readiness, record_operation
from api.schema import Mutation, Query
from api.services import Services
from api.tracing import trace_requests
from api.types import ApiContext
from contracts.api_messages import AUTH_HEADER_MALFORMED, INTERNAL
from contracts.outcomes import Probe

log = structlog.get_logger("api")

# Codes of requests refused before GraphQL runs, by HTTP status.
REJECTION_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


class ApiSchema(Schema):
    """Logs only unexpected errors: expected ones are the caller's, not ours."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            # No path: the request itself was wrong (variables), before any resolver ran.
            if original is not None and not isinstance(original, ApiError) and error.path:
                log.error(
                    "resolver failed",
                    errorMessage=str(original),
                    errorType=type(original).__name__,
                    path=error.path,
                )


class OperationLog(SchemaExtension):
    """One DEBUG line per operation (its root fields, error codes and duration) and
    its metrics (`record_operation`).

    Deliberately never the variables or the query text: they carry passwords.
    """

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        # Execution errors are in the result; parse/validation ones only before it.
        errors = _result_errors(context.result) or context.pre_execution_errors or []
        seconds = time.perf_counter() - started
        fields = _root_fields(context.graphql_document)
        classified = [classify(e) for e in errors]
        record_operation(fields, max((c.status for c in classified), default=200), seconds)
        log.debug(
            "graphql operation",
            operationName=context.operation_name,
            fields=fields,
            errorCodes=[c.code for c in classified],
            durationMs=round(seconds * 1000, 2),
        )


def _result_errors(result: object) -> list[GraphQLError]:
    return list(getattr(result, "errors", None) or [])


def _root_fields(document: DocumentNode | None) -> list[str]:
    if document is None:
        return []
    return [
        selection.name.value
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for selection in definition.selection_set.selections
        if isinstance(selection, FieldNode)
    ]


class Classified:
    """What the client is told about one error."""

    __slots__ = ("code", "field", "message", "status")

    def __init__(self, status: int, code: str, field: str | None, message: str) -> None:
        self.status, self.code, self.field, self.message = status, code, field, message


def classify(error: GraphQLError) -> Classified:
    """Status, code, field and message of an error: 4xx unless it is our defect."""
    original = error.original_error
    if isinstance(original, ApiError):
        return Classified(original.status, original.code, original.field, original.message)
    if error.path:
        return Classified(500, "INTERNAL_SERVER_ERROR", None, INTERNAL)
    # No path: syntax, validation or variable coercion, all before execution.
    node = error.nodes[0] if error.nodes else None
    if isinstance(node, VariableDefinitionNode):
        # graphql-core names the variable and the path inside it, never the whole value.
        return Classified(400, "BAD_USER_INPUT", node.variable.name.value, error.message)
    return Classified(400, "GRAPHQL_VALIDATION_FAILED", None, error.message)


def build_schema(limits: ApiLimits | None = None) -> Schema:
    limits = limits or ApiLimits()
    return ApiSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            *validation_extensions(limits),
            RejectUnstorableText,
            ResolverGate,
            OperationLog,
        ],
    )


class GraphQLApp(GraphQL[ApiContext, None]):
    def __init__(self, services: Services, limits: ApiLimits) -> None:
        super().__init__(build_schema(limits), graphql_ide=None, allow_queries_via_get=False)
        self._services = services
        self._limits = limits
        # Process-wide resolver slots, fewer than the database and Redis pools hold.
        self._slots = asyncio.Semaphore(limits.max_concurrent_resolvers)
        self._search_shares = SearchShares(limits.search_share, limits.search_wait_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        media = preferred_media_type(Headers(scope=scope).get("accept"))
        try:
            response = await self._answer(scope, receive, media)
        except RequestRejected as exc:
            response = _rejection(exc.status, exc.message, exc.field, media)
        except HTTPException as exc:
            response = _rejection(exc.status_code, exc.reason, None, media)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, media: str) -> Response:
        limit = self._limits.max_body_bytes
        length = declared_length(scope["headers"])
        if length is not None and length > limit:
            raise body_too_large(limit)
        request = Request(scope, receive=limited_receive(receive, limit))
        request.state.media = media
        response = await self.run(request)
        response.headers["content-type"] = media
        return response

    def parse_json(self, data: str | bytes) -> Any:
        return parse_body(
            data,
            max_depth=self._limits.max_json_depth,
            max_query_chars=self._limits.max_query_chars,
        )

    async def get_context(self, request: Any, response: Any) -> ApiContext:
        viewer, problem = None, None
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated(AUTH_HEADER_MALFORMED)
                viewer = self._services.tokens.verify(token.strip())
            except Unauthenticated as exc:
                problem = exc
        request.state.sub_response = response
        correlation = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        slots = ResolverSlots(
            self._slots, self._limits.resolvers_per_request, self._limits.busy_wait_seconds
        )
        return ApiContext(
            self._services,
            viewer,
            problem,
            correlation[:128],
            request,
            response,
            limits=self._limits,
            slots=slots,
            search_shares=self._search_shares,
        )

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            classified = [classify(e) for e in result.errors]
            status = max(c.status for c in classified)
            data["errors"] = [_shaped(e, c) for e, c in zip(result.errors, classified, strict=True)]
            response = request.state.sub_response
            response.status_code = status
            retry = [getattr(e.original_error, "retry_after", 0) for e in result.errors]
            if max(retry) > 0:
                response.headers["retry-after"] = str(max(retry))
            # A request error under the GraphQL-over-HTTP media type: nothing ran, no data.
            nothing_ran = result.data is None and not any(e.path for e in result.errors)
            if nothing_ran and getattr(request.state, "media", None) == GRAPHQL_RESPONSE:
                del data["data"]
        return data


def _shaped(error: GraphQLError, c: Classified) -> dict[str, Any]:
    body: dict[str, Any] = dict(error.formatted)
    body["message"] = c.message
    body["extensions"] = {"code": c.code, "field": c.field}
    return body


def _rejection(status: int, message: str, field: str | None, media: str) -> Response:
    code = REJECTION_CODES.get(status, "BAD_REQUEST")
    return JSONResponse(error_body(message, code, field), status_code=status, media_type=media)


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(
    services: Services,
    limits: ApiLimits | None = None,
    probes: Mapping[str, Probe] | None = None,
) -> Starlette:
    """The whole HTTP surface of `socialpipe api` (metrics are on `METRICS_PORT`).

    `/readyz` answers 200 only while every one of `probes` (PostgreSQL, Redis)
    answers; `/healthz` only says the process serves. Every request is logged
    (`api/observe.py`).
    """
    graphql = GraphQLApp(services, limits or ApiLimits())
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readiness(probes or {})),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ]
    )
    app.add_middleware(RequestLog)
    trace_requests(app)
    return app
