"""GraphQL over HTTP at the edge: media types, the body's size and shape.

Follows the GraphQL-over-HTTP specification's two response media types: a
client whose `Accept` prefers `application/graphql-response+json` gets it, and
a request error (one that stops the operation before it runs: unreadable body,
syntax, validation, variables) answers 4xx with no `data` entry; everyone else
gets `application/json` as before. Either way a malformed request answers 4xx
with a GraphQL error body, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from contracts.api_messages import (
    BODY_NOT_AN_OBJECT,
    BODY_NOT_JSON,
    BODY_TOO_DEEP,
    BODY_TOO_LARGE,
    CONTENT_LENGTH_NOT_A_NUMBER,
    OPERATION_NAME_NOT_A_STRING,
    QUERY_TOO_LONG,
)

GRAPHQL_RESPONSE: Final = "application/graphql-response+json"
JSON: Final = "application/json"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class RequestRejected(Exception):
    """A request refused before GraphQL sees it: a status and one sentence."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def preferred_media_type(accept: str | None) -> str:
    """The response media type for an `Accept` header (`application/json` by default).

    The highest q-value wins; on a tie `application/graphql-response+json`, the
    specification's preferred type, wins. Anything else (`*/*`, `text/html`,
    no header) keeps the `application/json` behaviour older clients expect.
    """
    best, best_q = JSON, 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media not in (GRAPHQL_RESPONSE, JSON) or q <= 0:
            continue
        if q > best_q or (q == best_q and media == GRAPHQL_RESPONSE):
            best, best_q = media, q
    return best


def limited_receive(receive: Receive, max_bytes: int) -> Receive:
    """An ASGI `receive` that refuses a body longer than `max_bytes` as it arrives."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise body_too_large(max_bytes)
        return message

    return wrapped


def body_too_large(max_bytes: int) -> RequestRejected:
    return RequestRejected(413, BODY_TOO_LARGE.format(max_bytes=max_bytes))


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise RequestRejected(400, CONTENT_LENGTH_NOT_A_NUMBER) from None
    return None


def parse_body(data: str | bytes, *, max_depth: int, max_query_chars: int) -> dict[str, Any]:
    """The request's JSON object, refused with a 4xx when it is not one or is too big."""
    try:
        body = json.loads(data)
    except RecursionError:
        raise nested_too_deeply(max_depth) from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise RequestRejected(400, BODY_NOT_JSON) from None
    if not isinstance(body, dict):
        raise RequestRejected(400, BODY_NOT_AN_OBJECT)
    if nesting_of(body, max_depth + 1) > max_depth:
        raise nested_too_deeply(max_depth)
    query = body.get("query")
    if isinstance(query, str) and len(query) > max_query_chars:
        raise RequestRejected(400, QUERY_TOO_LONG.format(max_chars=max_query_chars), "query")
    operation = body.get("operationName")
    if not isinstance(operation, str | None):
        raise RequestRejected(400, OPERATION_NAME_NOT_A_STRING, "operationName")
    return body


def nested_too_deeply(max_depth: int) -> RequestRejected:
    return RequestRejected(400, BODY_TOO_DEEP.format(max_depth=max_depth))


def nesting_of(value: object, stop: int) -> int:
    """How deeply lists and objects nest in a parsed JSON value, counted up to `stop`."""
    depth, level = 0, [value]
    while level and depth < stop:
        children: list[object] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if not any(isinstance(item, dict | list) for item in level):
            break
        depth += 1
        level = children
    return depth


def error_body(message: str, code: str, field: str | None) -> dict[str, Any]:
    """A GraphQL response with one request error (no `data`: nothing was executed)."""
    return {"errors": [{"message": message, "extensions": {"code": code, "field": field}}]}
