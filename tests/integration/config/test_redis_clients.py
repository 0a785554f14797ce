"""Redis clients built by config/clients.py: a burst beyond the pool waits, on one node
and on a cluster, instead of failing with "Too many connections"."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from config.clients import open_any_redis, waiting_redis
from tests.settings import SettingsFactory, redis_test_url

HOLD_SECONDS = 0.1


async def test_a_burst_larger_than_the_pool_waits_for_connections(
    feed_redis_url: str, settings_factory: SettingsFactory
) -> None:
    # GIVEN a client of two connections (per node, on a cluster)
    async with AsyncExitStack() as stack:
        client = await open_any_redis(
            stack, settings_factory(redis_url=feed_redis_url), max_connections=2
        )
        key = f"empty:{{{uuid.uuid4()}}}"
        started = time.perf_counter()
        # WHEN twelve commands that each hold a connection for 0.1 s go at once
        results = await asyncio.gather(*(client.blpop([key], HOLD_SECONDS) for _ in range(12)))
        took = time.perf_counter() - started
    # THEN all of them succeed, taking turns for the two connections
    assert results == [None] * 12
    assert took >= 6 * HOLD_SECONDS * 0.9


async def test_a_pool_held_longer_than_the_wait_fails_with_a_connection_error() -> None:
    async with AsyncExitStack() as stack:
        client = waiting_redis(stack, redis_test_url(), max_connections=1, wait_seconds=0.2)
        holder = asyncio.ensure_future(client.blpop([f"empty:{uuid.uuid4()}"], 1))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        with pytest.raises(RedisConnectionError):
            await client.ping()
        assert time.perf_counter() - started < 0.9
        await holder
