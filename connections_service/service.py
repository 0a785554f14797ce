"""The methods of `socialpipe.connections.v1.Connections`, answered from PostgreSQL.

Each call is observed once (`answering`): its latency and status code go to
`socialpipe_grpc_server_handling_seconds` / `socialpipe_grpc_server_handled_total`,
and our failure types become gRPC status codes at this boundary: malformed
input is INVALID_ARGUMENT (with the field named), a PostgreSQL outage or a
transient failure is UNAVAILABLE (a client may retry it), anything else is
INTERNAL and logged with its stack.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import grpc
import structlog

from connections_service.proto import connections_pb2 as pb
from connections_service.proto import connections_pb2_grpc as pb_grpc
from contracts.errors import PermanentError, TransientError
from contracts.metrics import GRPC_RPC_DURATION, GRPC_RPC_HANDLED
from store.social import ConnectionRow
from transforms.fanout import UUID_BYTES

log = structlog.get_logger(__name__)

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["Connections"].full_name

Context = grpc.aio.ServicerContext[Any, Any]


class ConnectionReads(Protocol):
    """What the service reads (`connections_service/postgres.py` in production)."""

    def connection_pages(self, user_id: uuid.UUID) -> AsyncIterator[bytes]:
        """The accepted connections of `user_id` as packed, ordered pages."""
        ...

    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool: ...

    async def pending_request(self, a: uuid.UUID, b: uuid.UUID) -> ConnectionRow | None: ...


class InvalidArgument(ValueError):
    """A request field that is not what the contract says."""


def parse_user_id(value: str, field: str) -> uuid.UUID:
    """A UUID in canonical text form, or an `InvalidArgument` naming the field."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"{field} must be a UUID, got {value[:64]!r}.") from None


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, TransientError):  # an outage (DependencyDown) included
        return grpc.StatusCode.UNAVAILABLE, exc.message
    if isinstance(exc, PermanentError):
        return grpc.StatusCode.FAILED_PRECONDITION, exc.message
    return grpc.StatusCode.INTERNAL, "The Connections Service failed; see its log."


@asynccontextmanager
async def answering(method: str, context: Context) -> AsyncIterator[None]:
    """Observe one call of `method` and turn what escapes into its status code."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        code = grpc.StatusCode.CANCELLED  # the client went away or its deadline passed
        raise
    except Exception as exc:
        code, details = _status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("call failed", method=method)
        else:
            log.warning("call refused", method=method, code=code.name, errorMessage=details)
        await context.abort(code, details)
    finally:
        GRPC_RPC_HANDLED.labels(method=method, code=code.name).inc()
        GRPC_RPC_DURATION.labels(method=method).observe(time.perf_counter() - started)


class ConnectionsServicer(pb_grpc.ConnectionsServicer):
    """The three methods of `connections.proto`."""

    def __init__(self, reads: ConnectionReads) -> None:
        self._reads = reads

    async def ListConnectionIds(
        self, request: pb.ListConnectionIdsRequest, context: Context
    ) -> AsyncIterator[pb.ConnectionIdsChunk]:
        async with answering("ListConnectionIds", context):
            user = parse_user_id(request.user_id, "user_id")
            async for page in self._reads.connection_pages(user):
                yield pb.ConnectionIdsChunk(ids=page, count=len(page) // UUID_BYTES)

    async def AreConnected(self, request: pb.UserPair, context: Context) -> pb.AreConnectedReply:
        async with answering("AreConnected", context):
            a, b = _pair(request)
            return pb.AreConnectedReply(connected=await self._reads.are_connected(a, b))
        raise AssertionError("unreachable: answering aborts or returns")

    async def GetPendingRequest(
        self, request: pb.UserPair, context: Context
    ) -> pb.PendingRequestReply:
        async with answering("GetPendingRequest", context):
            a, b = _pair(request)
            row = await self._reads.pending_request(a, b)
            if row is None:
                return pb.PendingRequestReply(pending=False)
            return pb.PendingRequestReply(
                pending=True, connection_id=str(row.id), requester_id=str(row.requester_id)
            )
        raise AssertionError("unreachable: answering aborts or returns")


def _pair(request: pb.UserPair) -> tuple[uuid.UUID, uuid.UUID]:
    return (
        parse_user_id(request.user_id, "user_id"),
        parse_user_id(request.other_user_id, "other_user_id"),
    )
