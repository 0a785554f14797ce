"""A slow service ends in DEADLINE_EXCEEDED (transient for the feed worker); SIGTERM
lets the call in flight finish, refuses new ones and exits 0."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from connections_service.client import ConnectionsClient, open_channel
from contracts.errors import DependencyDown, TransientError
from contracts.failures import CONNECTIONS_SERVICE
from pipelines.feed.grpc_connections import GrpcConnectionSource
from tests.integration.connections_service.proxy import DelayingProxy
from tests.integration.connections_service.servers import ServiceFactory, ServiceProcess
from tests.integration.feed_over_sqs.helpers import eventually
from tests.integration.pipelines.feed.helpers import add_users, connect


@pytest.fixture
async def slow_proxy(connections_service: ServiceProcess) -> AsyncIterator[DelayingProxy]:
    proxy = await DelayingProxy("127.0.0.1", connections_service.port).start()
    yield proxy
    await proxy.close()


async def test_slow_service_is_deadline_exceeded_and_transient(
    db: asyncpg.Pool, slow_proxy: DelayingProxy
) -> None:
    # GIVEN a client with a 0.3 s deadline, through a proxy that answers after 1 s
    author, friend = await add_users(db, 2)
    await connect(db, author, [friend])
    channel = open_channel(slow_proxy.address)
    client = ConnectionsClient(channel, deadline=0.3)
    source = GrpcConnectionSource(client)
    try:
        assert list(await source.accepted_connections(author)) == [friend]
        slow_proxy.delay = 1.0
        # WHEN the list is read THEN the call ends in DEADLINE_EXCEEDED...
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await client.connection_ids(author)
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        # ...which the feed worker's source reports as transient, not as an outage
        with pytest.raises(TransientError) as failed:
            await source.accepted_connections(author)
    finally:
        await channel.close()
    assert not isinstance(failed.value, DependencyDown)
    assert failed.value.error_type == "DeadlineExceeded"
    assert "from the Connections Service failed: DEADLINE_EXCEEDED" in failed.value.message


async def test_stopped_service_is_an_outage_of_the_connections_service(
    service_factory: ServiceFactory,
) -> None:
    # GIVEN a source whose service was killed
    service = service_factory().start()
    channel = open_channel(service.address)
    source = GrpcConnectionSource(ConnectionsClient(channel, deadline=2.0))
    try:
        await source.probe()
        service.kill()
        # WHEN it reads THEN the failure names the Connections Service as down
        with pytest.raises(DependencyDown) as raised:
            await source.accepted_connections(uuid.uuid4())
        with pytest.raises(DependencyDown):
            await source.probe()
    finally:
        await channel.close()
    assert raised.value.dependency == CONNECTIONS_SERVICE


async def test_sigterm_lets_the_call_in_flight_finish_and_refuses_new_ones(
    db: asyncpg.Pool, service_factory: ServiceFactory
) -> None:
    # GIVEN a call held in flight by a lock on the connections table
    service = service_factory().start()
    a, b = await add_users(db, 2)
    await connect(db, a, [b])
    channel = open_channel(service.address)
    client = ConnectionsClient(channel, deadline=10.0)
    async with db.acquire() as locker:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("LOCK TABLE connections IN ACCESS EXCLUSIVE MODE")
        in_flight = asyncio.create_task(client.are_connected(a, b))

        async def blocked() -> bool:
            waiting = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%status = ''accepted''%'"
            )
            return bool(waiting)

        await eventually(blocked, what="the call waits on the lock")
        # WHEN the service gets SIGTERM
        assert service.proc is not None
        service.proc.terminate()

        # THEN a new call is refused while the one in flight still waits
        async def refusing() -> bool:
            try:
                await ConnectionsClient(channel, deadline=1.0).are_connected(b, a)
            except grpc.aio.AioRpcError as exc:
                return exc.code() is grpc.StatusCode.UNAVAILABLE
            return False

        await eventually(refusing, what="new calls refused")
        assert not in_flight.done()
        await lock.rollback()
    # AND the call in flight gets its answer, and the process exits 0
    try:
        assert await asyncio.wait_for(in_flight, 10) is True
    finally:
        await channel.close()
    assert await asyncio.to_thread(service.proc.wait, 15) == 0
