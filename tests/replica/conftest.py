"""A real primary with a streaming replica, and a private Redis, for the replica-read tests.

One primary, one replica and one Redis serve the whole run (started in a few
seconds, stopped by finalizers). Every test starts with replay running, empty
tables on both servers and an empty Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio

from store.db import create_pool, with_database
from store.migrate import upgrade
from tests.outage.servers import StoppableRedis
from tests.replica.replication import DATABASE, Replication, Servers
from tests.replica.servers import ReplicationPrimary, StreamingReplica, wait_for_replay


@pytest.fixture(scope="session")
def replica_servers(request: pytest.FixtureRequest) -> Servers:
    """Start the primary, its replica and a Redis; each is closed by its own finalizer."""
    primary = ReplicationPrimary()
    request.addfinalizer(primary.close)
    primary.start()
    replica = StreamingReplica(primary)
    request.addfinalizer(replica.close)
    redis = StoppableRedis()
    request.addfinalizer(redis.close)
    redis.start()
    replica.start()
    return Servers(primary, replica, redis)


@pytest.fixture(scope="session")
async def replication(replica_servers: Servers) -> AsyncIterator[Replication]:
    primary_url = replica_servers.primary.url(DATABASE)
    await upgrade(primary_url)
    # The database exists on the replica only once its creation is replayed.
    admin_primary = await create_pool(replica_servers.primary.url(), max_size=1)
    admin_replica = await create_pool(replica_servers.replica.url(), max_size=1)
    try:
        await wait_for_replay(admin_primary, admin_replica)
    finally:
        await admin_primary.close()
        await admin_replica.close()
    primary = await create_pool(primary_url, max_size=4)
    replica = await create_pool(with_database(replica_servers.replica.url(), DATABASE), max_size=4)
    redis = redis_asyncio.Redis.from_url(replica_servers.redis.url)
    yield Replication(replica_servers, primary, replica, redis)
    await redis.aclose()
    await primary.close()
    await replica.close()


@pytest.fixture
async def replicated(replication: Replication) -> AsyncIterator[Replication]:
    """Replay running, every table empty on both servers, Redis empty."""
    await replication.resume_replay()
    tables = await replication.primary.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'schema_migrations'"
    )
    names = ", ".join(f'"{t["tablename"]}"' for t in tables)
    await replication.primary.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    await replication.redis.flushall()
    await replication.caught_up()
    yield replication
    # A failed test must not leave the replica paused for the next one.
    await replication.resume_replay()
