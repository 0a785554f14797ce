"""The replicated servers the replica tests run on, and how tests steer them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio

from config.settings import Settings
from tests.outage.servers import ServerError, StoppableRedis
from tests.replica.servers import ReplicationPrimary, StreamingReplica, wait_for_replay

DATABASE = "socialpipe"


@dataclass(frozen=True)
class Servers:
    primary: ReplicationPrimary
    replica: StreamingReplica
    redis: StoppableRedis


@dataclass(frozen=True)
class Replication:
    """The running servers, with pools the tests use to arrange data and steer replay."""

    servers: Servers
    primary: asyncpg.Pool
    replica: asyncpg.Pool
    redis: redis_asyncio.Redis

    @property
    def primary_url(self) -> str:
        return self.servers.primary.url(DATABASE)

    @property
    def replica_url(self) -> str:
        return self.servers.replica.url(DATABASE)

    def settings(self, *, read_replica: bool = True, **overrides: Any) -> Settings:
        """Settings on these servers; `read_replica=False` leaves DATABASE_READ_URL unset."""
        values: dict[str, Any] = {
            "database_url": self.primary_url,
            "database_read_url": self.replica_url if read_replica else None,
            "redis_url": self.servers.redis.url,
            "search_backend": "postgres",
            "metrics_port": 0,
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(**values)

    async def caught_up(self) -> float:
        return await wait_for_replay(self.primary, self.replica)

    async def pause_replay(self) -> None:
        await self.replica.execute("SELECT pg_wal_replay_pause()")
        # The request takes effect between two WAL records: wait until it has.
        deadline = time.monotonic() + 10
        while await self.replica.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise ServerError("replay did not pause")

    async def resume_replay(self) -> None:
        await self.replica.execute("SELECT pg_wal_replay_resume()")
