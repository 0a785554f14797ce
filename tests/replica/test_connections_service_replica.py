"""The Connections Service with DATABASE_READ_URL on a real streaming replica: connection
lists come from the replica, the pair checks from the primary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from config.connections_service import build_connections_server
from connections_service.client import ConnectionsClient, open_channel
from tests.replica.data import add_user, connect
from tests.replica.replication import Replication
from transforms.fanout import PackedIds


@pytest.fixture
async def client(replicated: Replication) -> AsyncIterator[ConnectionsClient]:
    async with AsyncExitStack() as stack:
        server = await build_connections_server(stack, replicated.settings(), address="127.0.0.1:0")
        await server.start()
        stack.push_async_callback(server.stop, 1.0)
        channel = open_channel(f"127.0.0.1:{server.port}")
        stack.push_async_callback(channel.close)
        yield ConnectionsClient(channel, deadline=5.0)


async def test_lists_come_from_the_replica_and_pair_checks_from_the_primary(
    replicated: Replication, client: ConnectionsClient
) -> None:
    # GIVEN an author with one friend, replayed, then a second friend the replica
    # has not replayed yet
    author, old, new = [await add_user(replicated.primary, n) for n in ("a", "old", "new")]
    await connect(replicated.primary, author, [old])
    await replicated.caught_up()
    await replicated.pause_replay()
    await connect(replicated.primary, author, [new])
    # WHEN the service is asked
    listed = list(PackedIds(await client.connection_ids(author)))
    # THEN the list is the replica's (without the newest friend)...
    assert listed == [old]
    # ...while the pair check, which decisions right after a write rely on, sees it
    assert await client.are_connected(author, new)
    # AND once replay catches up the list has both
    await replicated.resume_replay()
    await replicated.caught_up()
    assert sorted(PackedIds(await client.connection_ids(author))) == sorted([old, new])
