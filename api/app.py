"""The ASGI application: Strawberry at `/graphql`, plus `/healthz` and `/metrics`.

Expected failures become HTTP statuses here: validation 400 (with `extensions`
`{code, field}`), malformed GraphQL 400, authentication 401, someone else's data
403. Only a genuine defect answers 500, and its message is masked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import structlog
from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionContext, ExecutionResult

from api.errors import ApiError, Unauthenticated
from api.guard import RejectUnstorableText
from api.schema import Mutation, Query
from api.services import Services
from api.types import ApiContext

log = structlog.get_logger("api")

INTERNAL = "Internal server error."


class ApiSchema(Schema):
    """Logs only unexpected errors: expected ones are the caller's, not ours."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, ApiError):
                log.error(
                    "resolver failed",
                    errorMessage=str(original),
                    errorType=type(original).__name__,
                    path=error.path,
                )


class OperationLog(SchemaExtension):
    """One DEBUG line per operation: its root fields, error codes and duration.

    Deliberately never the variables or the query text: they carry passwords.
    """

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        # Execution errors are in the result; parse/validation ones only before it.
        errors = _result_errors(context.result) or context.pre_execution_errors or []
        log.debug(
            "graphql operation",
            operationName=context.operation_name,
            fields=_root_fields(context.graphql_document),
            errorCodes=[_code(e) for e in errors],
            durationMs=round((time.perf_counter() - started) * 1000, 2),
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


def _code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, ApiError):
        return original.code
    return "GRAPHQL_VALIDATION_FAILED" if original is None else "INTERNAL_SERVER_ERROR"


def build_schema() -> Schema:
    return ApiSchema(
        query=Query, mutation=Mutation, extensions=[RejectUnstorableText, OperationLog]
    )


class GraphQLApp(GraphQL[ApiContext, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(build_schema(), graphql_ide=None, allow_queries_via_get=False)
        self._services = services

    async def get_context(self, request: Any, response: Any) -> ApiContext:
        viewer, problem = None, None
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            try:
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
                viewer = self._services.tokens.verify(token.strip())
            except Unauthenticated as exc:
                problem = exc
        request.state.sub_response = response
        correlation = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        return ApiContext(self._services, viewer, problem, correlation[:128], request, response)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        data: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            status, errors = _shape_errors(result)
            data["errors"] = errors
            request.state.sub_response.status_code = status
        return data


def _shape_errors(result: ExecutionResult) -> tuple[int, list[object]]:
    status = 200
    shaped: list[object] = []
    for error in result.errors or []:
        original = error.original_error
        body = error.formatted
        if isinstance(original, ApiError):
            body["message"] = original.message
            body["extensions"] = {"code": original.code, "field": original.field}
            status = max(status, original.status)
        elif original is None:
            # Syntax and schema-validation errors: the request itself is malformed.
            body["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED", "field": None}
            status = max(status, 400)
        else:
            body["message"] = INTERNAL
            body["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "field": None}
            status = max(status, 500)
        shaped.append(body)
    return status, shaped


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(services: Services) -> Starlette:
    """The whole HTTP surface of `socialpipe api`."""
    graphql = GraphQLApp(services)
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", healthz),
            Route("/metrics", metrics),
            Route("/graphql", graphql, methods=["GET", "POST"]),
        ]
    )
