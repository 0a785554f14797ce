"""Composition root of the feed fan-out pipeline (`socialpipe worker feed`).

With `DATABASE_READ_URL` set, the post check and the connection reads go to
the replica, and the primary answers for a post the replica does not have yet.
With a `redis+cluster://` REDIS_URL, feeds and the connection cache live on a
Redis Cluster (`pipelines/feed/cluster_feeds.py`); otherwise on one node.
With `CONNECTIONS_SOURCE=grpc`, connection lists come from the Connections
Service at `CONNECTIONS_SERVICE_ADDR` (docs/connections-service.md); the post
check still reads PostgreSQL.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from config.clients import (
    is_cluster_url,
    open_redis_cluster,
    waiting_redis,
    warm_up_cluster,
)
from config.search import open_read_pool, primary_and_replica_probe
from config.settings import Settings
from config.tracing import traced
from connections_service.client import ConnectionsClient, open_channel
from contracts.failures import CONNECTIONS_SERVICE, POSTGRES, REDIS
from contracts.outcomes import Probe
from pipelines.feed.breaker import CircuitBreaker, Clock
from pipelines.feed.cluster_feeds import ClusterFeedStore, slot_ordered
from pipelines.feed.distribution import Distributor
from pipelines.feed.enrichment import ConnectionLookup
from pipelines.feed.grpc_connections import GrpcConnectionSource
from pipelines.feed.handler import FeedHandler
from pipelines.feed.ports import ConnectionReader, ConnectionSource, FeedStore
from pipelines.feed.redis_cache import RedisConnectionCache
from pipelines.feed.redis_feeds import RedisFeedStore
from store.connections import PgConnectionSource, RoutedConnectionSource
from store.db import create_pool
from store.replica import ReadRouter

FeedRedis = aioredis.Redis | RedisCluster


def feed_pool_size(settings: Settings) -> int:
    """Connections per Redis node: every in-flight batch holds at most one per node."""
    return 4 * settings.fanout_parallelism + 16


def open_feed_redis(stack: AsyncExitStack, settings: Settings) -> FeedRedis:
    """The feed worker's Redis: a cluster client for a `redis+cluster://` URL, else
    `open_single_feed_redis`."""
    if is_cluster_url(settings.redis_url):
        return open_redis_cluster(
            stack, settings.redis_url, max_connections=feed_pool_size(settings)
        )
    return open_single_feed_redis(stack, settings)


def open_single_feed_redis(stack: AsyncExitStack, settings: Settings) -> aioredis.Redis:
    """A Redis client whose pool makes callers wait for a connection instead of failing.

    Every in-flight message holds up to FANOUT_PARALLELISM connections, and the
    runtime's concurrency is not known here: with the default pool, a burst of
    concurrent fan-outs would fail with "Too many connections"; waiting a moment
    is the better back-pressure.
    """
    return waiting_redis(
        stack, settings.redis_url, max_connections=feed_pool_size(settings), wait_seconds=10
    )


async def open_connection_source(
    stack: AsyncExitStack, settings: Settings, primary: asyncpg.Pool
) -> tuple[ConnectionSource, Probe]:
    """The PostgreSQL connection source and its probe: the primary alone, or routed via
    `DATABASE_READ_URL`."""
    replica = await open_read_pool(stack, settings)
    probe = primary_and_replica_probe(primary, replica)
    if replica is None:
        return PgConnectionSource(primary), probe
    router = ReadRouter(PgConnectionSource(primary), PgConnectionSource(replica), pipeline="feed")
    return RoutedConnectionSource(router), probe


GRPC_DEADLINE_MARGIN = 0.5


def open_grpc_source(
    stack: AsyncExitStack, settings: Settings
) -> tuple[GrpcConnectionSource, Probe]:
    """The Connections Service client (a deadline of BREAKER_CALL_TIMEOUT per call) and its
    health-check probe; the channel is closed by `stack`."""
    channel = open_channel(settings.connections_service_addr)
    stack.push_async_callback(channel.close)
    source = GrpcConnectionSource(
        ConnectionsClient(channel, deadline=settings.breaker_call_timeout)
    )
    return source, source.probe


async def build_feed_handler(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    connection_source: ConnectionSource | None = None,
    redis: FeedRedis | None = None,
    clock: Clock | None = None,
) -> FeedHandler:
    """Build the feed handler, opening PostgreSQL and Redis unless they are given.

    Clients opened here are closed by `stack`; given ones belong to the caller.
    `clock` (monotonic seconds) drives the circuit breaker.
    """
    probes: dict[str, Probe] = {}
    if connection_source is None:
        pool = await create_pool(settings.database_url)
        stack.push_async_callback(pool.close)
        connection_source, probes[POSTGRES] = await open_connection_source(stack, settings, pool)
    if redis is None:
        redis = open_feed_redis(stack, settings)
        if isinstance(redis, RedisCluster):
            await warm_up_cluster(redis)
    probes[REDIS] = redis.ping
    reader: ConnectionReader = connection_source
    dependency, call_timeout = POSTGRES, settings.breaker_call_timeout
    service_probe: Probe | None = None
    if settings.connections_source == "grpc":
        reader, service_probe = open_grpc_source(stack, settings)
        # The call's own deadline fires first, so the service sees the cancellation.
        dependency, call_timeout = CONNECTIONS_SERVICE, call_timeout + GRPC_DEADLINE_MARGIN
    breaker = CircuitBreaker(
        "connections",
        failure_rate=settings.breaker_failure_rate,
        window_seconds=settings.breaker_window_seconds,
        min_calls=settings.breaker_min_calls,
        call_timeout=call_timeout,
        open_seconds=settings.breaker_open_seconds,
        clock=clock or time.monotonic,
    )
    # On a cluster the lists are cached in slot order: each fan-out batch, one master.
    by_slot = isinstance(redis, RedisCluster)
    cache = RedisConnectionCache(
        redis,
        fresh_ttl=settings.connections_cache_ttl,
        stale_ttl=settings.connections_stale_ttl,
        by_slot=by_slot,
    )
    arrange = slot_ordered if by_slot else None
    lookup = ConnectionLookup(reader, cache, breaker, dependency=dependency, arrange=arrange)
    if service_probe is not None:
        probes[CONNECTIONS_SERVICE] = lookup.source_probe(service_probe)
    store = traced(feed_store(redis, settings), "redis", "push_batch")
    distributor = Distributor(store, parallelism=settings.fanout_parallelism)
    return FeedHandler(
        lookup=lookup,
        posts=connection_source,
        dependencies=probes,
        distributor=distributor,
        batch_size=settings.fanout_batch_size,
        marker_ttl=settings.fanout_marker_ttl,
    )


def feed_store(redis: FeedRedis, settings: Settings) -> FeedStore:
    """The cluster store for a cluster client; one node keeps its single-script path."""
    ttl = settings.fanout_marker_ttl
    if isinstance(redis, RedisCluster):
        return ClusterFeedStore(redis, max_length=settings.feed_max_length, marker_ttl=ttl)
    return RedisFeedStore(redis, max_length=settings.feed_max_length, marker_ttl=ttl)
