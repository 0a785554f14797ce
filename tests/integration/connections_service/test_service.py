"""The Connections Service as a process, called by a real grpcio client: the three
methods against PostgreSQL, malformed input, health, reflection and metrics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from connections_service.client import ConnectionsClient, open_channel
from connections_service.proto import connections_pb2 as pb
from connections_service.service import SERVICE_NAME
from tests.integration.connections_service.servers import ServiceProcess, health_check
from tests.integration.pipelines.feed.helpers import add_users, connect
from transforms.fanout import PackedIds

MANY = 12_000  # three chunks of at most 5,000


@pytest.fixture
async def client(connections_service: ServiceProcess) -> AsyncIterator[ConnectionsClient]:
    channel = open_channel(connections_service.address)
    yield ConnectionsClient(channel, deadline=10.0)
    await channel.close()


async def test_lists_every_accepted_connection_in_chunks_once_each(
    db: asyncpg.Pool, client: ConnectionsClient
) -> None:
    # GIVEN an author with 12,000 accepted connections in both directions, plus a
    # pending and a declined request
    author, pending, declined, *others = await add_users(db, MANY + 3)
    await connect(db, author, others[: MANY // 2])
    await db.copy_records_to_table(
        "connections",
        records=[(other, author) for other in others[MANY // 2 :]],
        columns=["requester_id", "addressee_id"],
    )
    await db.execute("UPDATE connections SET status = 'accepted' WHERE addressee_id = $1", author)
    await connect(db, author, [pending], status="pending")
    await connect(db, declined, [author], status="declined")
    # WHEN the list is streamed
    chunks = [chunk async for chunk in client.connection_chunks(author)]
    # THEN it comes in chunks of at most 5,000, sorted, each accepted connection once
    assert [len(c) // 16 for c in chunks] == [5000, 5000, 2000]
    ids = list(PackedIds(b"".join(chunks)))
    assert ids == sorted(others, key=lambda u: u.bytes)


async def test_unknown_user_has_an_empty_list(client: ConnectionsClient) -> None:
    assert await client.connection_ids(uuid.uuid4()) == b""


async def test_pair_checks_answer_from_the_primary(
    db: asyncpg.Pool, client: ConnectionsClient
) -> None:
    # GIVEN a accepted with b (b asked), c asked a and waits
    a, b, c, d = await add_users(db, 4)
    await connect(db, b, [a])
    await connect(db, c, [a], status="pending")
    # THEN connected is symmetric and a pending request is found from either side
    assert await client.are_connected(a, b) and await client.are_connected(b, a)
    assert not await client.are_connected(a, c)
    found = await client.pending_request(a, c)
    assert found is not None and found.requester_id == c
    assert await client.pending_request(c, a) == found
    assert await client.pending_request(a, b) is None
    assert await client.pending_request(a, d) is None


async def test_malformed_id_is_invalid_argument_naming_the_field(
    connections_service: ServiceProcess,
) -> None:
    async with grpc.aio.insecure_channel(connections_service.address) as channel:
        call = channel.unary_unary(
            f"/{SERVICE_NAME}/AreConnected",
            request_serializer=pb.UserPair.SerializeToString,
            response_deserializer=pb.AreConnectedReply.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(pb.UserPair(user_id=str(uuid.uuid4()), other_user_id="nope"), timeout=5)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "other_user_id must be a UUID, got 'nope'."


def test_stock_health_client_sees_serving(connections_service: ServiceProcess) -> None:
    with grpc.insecure_channel(connections_service.address) as channel:
        for service in ("", SERVICE_NAME):
            reply = health_check(channel, service)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as raised:
            health_check(channel, "no.such.Service")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_stock_reflection_client_discovers_the_contract(
    connections_service: ServiceProcess,
) -> None:
    with grpc.insecure_channel(connections_service.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert SERVICE_NAME in database.get_services()
        assert "grpc.health.v1.Health" in database.get_services()
        found = database.FindFileContainingSymbol(SERVICE_NAME)
    assert found.package == "socialpipe.connections.v1"
    methods = {m.name for s in found.service for m in s.method}
    assert methods == {"ListConnectionIds", "AreConnected", "GetPendingRequest"}


async def test_metrics_count_calls_by_method_and_status_code(
    connections_service: ServiceProcess, client: ConnectionsClient
) -> None:
    # GIVEN a successful call and a refused one
    await client.are_connected(uuid.uuid4(), uuid.uuid4())
    async with grpc.aio.insecure_channel(connections_service.address) as channel:
        call = channel.unary_stream(
            f"/{SERVICE_NAME}/ListConnectionIds",
            request_serializer=pb.ListConnectionIdsRequest.SerializeToString,
            response_deserializer=pb.ConnectionIdsChunk.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in call(pb.ListConnectionIdsRequest(user_id="x"), timeout=5):
                pass
    # WHEN the process's /metrics is scraped
    async with httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{connections_service.metrics_port}"
        text = (await http.get(f"{url}/metrics")).text
        ready = await http.get(f"{url}/readyz")
    # THEN both calls are counted by method and code, and latency is observed
    assert 'socialpipe_grpc_server_handled_total{code="OK",method="AreConnected"}' in text
    refused = '{code="INVALID_ARGUMENT",method="ListConnectionIds"}'
    assert f"socialpipe_grpc_server_handled_total{refused}" in text
    assert 'socialpipe_grpc_server_handling_seconds_count{method="AreConnected"}' in text
    assert ready.status_code == 200
