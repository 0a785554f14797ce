"""A typed client of the Connections Service over one `grpc.aio` channel.

Every call carries a deadline; each finished call is counted in
`socialpipe_grpc_client_calls_total` by method and status code. The client
makes each call once: retrying is the caller's decision (the feed worker's one
retry layer is the consumer runtime's, see docs/failure-policy.md), so the
channel's own retries are switched off and only its reconnection backoff is
shortened, so that a restarted service is found again within seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Final, TypeVar

import grpc
from grpc_health.v1 import health_pb2

from connections_service.proto import connections_pb2 as pb
from connections_service.service import SERVICE_NAME
from contracts.metrics import GRPC_CLIENT_CALLS

T = TypeVar("T")

CHANNEL_OPTIONS: Final = (
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to `host:port` (the service is internal: the cluster network
    policy, not TLS, keeps others out)."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


@dataclass(frozen=True, slots=True)
class PendingRequest:
    connection_id: uuid.UUID
    requester_id: uuid.UUID


def _method(name: str) -> str:
    return f"/{SERVICE_NAME}/{name}"


class ConnectionsClient:
    """The three methods of `connections.proto`, each bounded by `deadline` seconds."""

    def __init__(self, channel: grpc.aio.Channel, *, deadline: float) -> None:
        self._deadline = deadline
        self._list = channel.unary_stream(
            _method("ListConnectionIds"),
            request_serializer=pb.ListConnectionIdsRequest.SerializeToString,
            response_deserializer=pb.ConnectionIdsChunk.FromString,
        )
        self._are_connected = channel.unary_unary(
            _method("AreConnected"),
            request_serializer=pb.UserPair.SerializeToString,
            response_deserializer=pb.AreConnectedReply.FromString,
        )
        self._pending = channel.unary_unary(
            _method("GetPendingRequest"),
            request_serializer=pb.UserPair.SerializeToString,
            response_deserializer=pb.PendingRequestReply.FromString,
        )
        self._health = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    async def connection_ids(self, user_id: uuid.UUID) -> bytes:
        """The packed 16-byte ids of `user_id`'s accepted connections, ascending."""
        return b"".join([chunk async for chunk in self.connection_chunks(user_id)])

    async def connection_chunks(self, user_id: uuid.UUID) -> AsyncIterator[bytes]:
        """The same, chunk by chunk as the service streams them."""
        call = self._list(pb.ListConnectionIdsRequest(user_id=str(user_id)), timeout=self._deadline)
        code = grpc.StatusCode.UNKNOWN
        try:
            async for chunk in call:
                yield chunk.ids
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            raise
        finally:
            GRPC_CLIENT_CALLS.labels(method="ListConnectionIds", code=code.name).inc()

    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        request = pb.UserPair(user_id=str(a), other_user_id=str(b))
        call = self._are_connected(request, timeout=self._deadline)
        reply = await _counted("AreConnected", call)
        return reply.connected

    async def pending_request(self, a: uuid.UUID, b: uuid.UUID) -> PendingRequest | None:
        request = pb.UserPair(user_id=str(a), other_user_id=str(b))
        reply = await _counted("GetPendingRequest", self._pending(request, timeout=self._deadline))
        if not reply.pending:
            return None
        return PendingRequest(uuid.UUID(reply.connection_id), uuid.UUID(reply.requester_id))

    async def serving(self) -> bool:
        """Whether the service's health check answers SERVING (the feed worker's probe)."""
        request = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        reply = await self._health(request, timeout=self._deadline)
        return reply.status == health_pb2.HealthCheckResponse.SERVING


async def _counted(method: str, call: Awaitable[T]) -> T:
    try:
        result = await call
    except grpc.RpcError as exc:
        GRPC_CLIENT_CALLS.labels(method=method, code=exc.code().name).inc()
        raise
    GRPC_CLIENT_CALLS.labels(method=method, code="OK").inc()
    return result
