"""What a load run sets up before the load (see `loadtest.runner`).

Its options and settings, the event bus (an emulator or a broker it starts, or
the configured one), the seeded database, the probes and the worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from config.clients import AnyRedis, open_any_redis
from config.settings import Settings
from contracts.keys import connections_cache_key, feed_key, profile_cache_key
from loadtest import emulator as emu
from loadtest.broker import tansu
from loadtest.bus import Bus, open_bus
from loadtest.drivers import GraphQL
from loadtest.emulator import free_port
from loadtest.graph import (
    LOADTEST_SHAPE,
    GraphShape,
    SocialGraph,
    build_graph,
    holds_graph,
    reset_activity,
    reset_tables,
    seed_graph,
)
from loadtest.latency import FeedProbe
from loadtest.processes import ProcessGroup
from loadtest.search_probe import IndexVersions, PostgresVersions, SearchProbe, VersionSource
from pipelines.feed.enrichment import stale_cache_key
from pipelines.feed.redis_cache import slots_cache_key
from store.db import create_pool, with_database
from store.migrate import upgrade

Mode = Literal["direct", "api"]
Transport = Literal["sqs", "kafka"]
LOAD_POLLERS = 4


@dataclass(frozen=True)
class LoadOptions:
    users: int = 30_000
    shape: GraphShape = LOADTEST_SHAPE
    posts_per_minute: float = 1000.0
    profile_updates_per_second: float = 50.0
    duration: float = 60.0
    warmup: float = 10.0
    workers: int = 1
    notifications_workers: int = 0
    concurrency: int | None = None
    attach: bool = False
    transport: Transport = "sqs"
    emulator: emu.Emulator | Literal["auto", "none"] = "fauxqs"
    # Kafka: start a tansu broker on loopback, or use KAFKA_BOOTSTRAP_SERVERS (none).
    broker: Literal["tansu", "none"] = "tansu"
    mode: Mode = "direct"
    slo_feed_p95: float | None = 2.0
    slo_search_p95: float | None = 5.0
    database: str = "socialpipe_loadtest"
    seed: int = 7
    hub_post_share: float = 0.005
    drain_seconds: float = 30.0
    out_dir: Path = Path("out/loadtest")
    picture: bool = True
    senders: int = 4
    # Start a local 3-master Redis Cluster for the run (loadtest.redis_cluster); the run's
    # REDIS_URL becomes its redis+cluster:// URL, for the probes and the workers.
    redis_cluster: bool = False
    # DATABASE_READ_URL of the started workers (a replica of DATABASE_URL's server);
    # its database is replaced by `database`, as DATABASE_URL's is.
    database_read_url: str | None = None
    # Where the started feed workers read connection lists: PostgreSQL, or a Connections
    # Service the run starts on a free loopback port (docs/connections-service.md).
    connections_source: Literal["postgres", "grpc"] = "postgres"


@dataclass
class Harness:
    """What a run holds open while the load flows."""

    settings: Settings
    pool: asyncpg.Pool
    redis: AnyRedis
    bus: Bus
    graph: SocialGraph
    connections: int
    feed_probe: FeedProbe
    search_probe: SearchProbe
    group: ProcessGroup | None = None
    api: GraphQL | None = None
    load_at_start: str = "n/a"
    backlog_max: dict[str, int] = field(default_factory=dict)


def run_settings(
    base: Settings, options: LoadOptions, bus: dict[str, str], redis: dict[str, str] | None = None
) -> Settings:
    """The run's settings: its database, its bus (`bus` from `bus_endpoint`), quiet workers.

    `redis` (from `redis_endpoint`) points the run at the Redis Cluster it started.
    A read URL (`--database-read-url`, else DATABASE_READ_URL) names the run's
    database too: a streaming replica holds every database of its primary.
    """
    read_url = options.database_read_url or base.database_read_url
    update: dict[str, Any] = {
        "database_url": with_database(base.database_url, options.database),
        "database_read_url": with_database(read_url, options.database) if read_url else None,
        "event_transport": options.transport,
        # Short long-polls so workers stop quickly; a receive returns as soon as
        # messages arrive, so latency does not depend on it.
        "receive_wait_seconds": min(base.receive_wait_seconds, 2),
        # Each poller has one receive in flight; under load a receive round trip
        # waits for a CPU, so two pollers capped a worker at ~20 messages per trip.
        "pollers": max(base.pollers, LOAD_POLLERS),
        "log_level": "WARNING",
    }
    update.update(bus)
    update.update(redis or {})
    if options.connections_source == "grpc" and not options.attach:
        update["connections_source"] = "grpc"
        update["connections_service_addr"] = f"127.0.0.1:{free_port()}"
    if options.mode == "api" and base.api_token_secret is None:
        update["api_token_secret"] = secrets.token_urlsafe(48)
    return base.model_copy(update=update)


@contextlib.contextmanager
def bus_endpoint(options: LoadOptions) -> Iterator[dict[str, str]]:
    """Start the run's emulator or broker; yields the settings that point at it.

    Nothing is started with `--attach` (the workers already run against the
    configured bus), with `--emulator none` on SQS or `--broker none` on Kafka.
    """
    if options.transport == "kafka":
        if options.attach or options.broker == "none":
            yield {}
            return
        with tansu(options.out_dir / "logs" / "kafka-broker.log") as bootstrap:
            yield {"kafka_bootstrap_servers": bootstrap}
        return
    if options.attach or options.emulator == "none":
        yield {}
        return
    with emu.emulator(emu.pick(options.emulator)) as url:
        yield {"aws_endpoint_url": url}


@contextlib.contextmanager
def redis_endpoint(options: LoadOptions) -> Iterator[dict[str, str]]:
    """Start the run's local Redis Cluster if asked; yields the settings that point at it.

    Three masters, no replicas, on loopback (`loadtest.redis_cluster.LocalCluster`), stopped
    and removed when the run ends, failed or not. Without `redis_cluster` nothing
    is started and REDIS_URL (one node or a `redis+cluster://` URL) is used.
    """
    if not options.redis_cluster:
        yield {}
        return
    from loadtest.redis_cluster import LocalCluster

    cluster = LocalCluster(masters=3)
    try:
        cluster.start()
        yield {"redis_url": cluster.url}
    finally:
        cluster.close()


async def prepare(stack: AsyncExitStack, settings: Settings, options: LoadOptions) -> Harness:
    """Migrate, reset and seed; open the clients and the topology; build the probes."""
    await upgrade(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=2, max_size=12)
    stack.push_async_callback(pool.close)
    redis = await open_any_redis(stack, settings, max_connections=16)
    graph = await asyncio.to_thread(
        build_graph, options.users, seed=options.seed, shape=options.shape
    )
    if await holds_graph(pool, graph):
        # The graph is deterministic for its options: seeding it again would only cost time.
        await reset_activity(pool)
        connections = len(graph.edges)
    else:
        await reset_tables(pool)
        connections = (await seed_graph(pool, graph)).connections
    await forget_users(redis, graph.users)
    bus = await open_bus(stack, settings, consumer_groups(settings, options))
    feed_probe = FeedProbe(
        redis,
        interval=0.02,
        batch_size=settings.fanout_batch_size,
        feed_max_length=settings.feed_max_length,
    )
    versions: VersionSource = (
        PostgresVersions(pool)
        if settings.search_backend == "postgres"
        else await _index(stack, settings)
    )
    search_probe = SearchProbe(versions)
    return Harness(settings, pool, redis, bus, graph, connections, feed_probe, search_probe)


def consumer_groups(settings: Settings, options: LoadOptions) -> dict[str, int]:
    """The pipelines that have workers in this run, with how many (attached: at least one)."""
    each = 1 if options.attach else options.workers
    groups = {settings.feed_queue: each, settings.search_queue: each}
    if options.notifications_workers:
        groups[settings.notifications_queue] = options.notifications_workers
    return groups


async def _index(stack: AsyncExitStack, settings: Settings) -> VersionSource:
    from config.search import open_search_index

    return IndexVersions(await open_search_index(stack, settings))


async def forget_users(redis: AnyRedis, users: tuple[Any, ...]) -> None:
    """Delete the graph users' feeds, cached connections and cached profiles, so a run
    starts cold and empty (the ids are the same every run; the tables are reset)."""
    keys = [k for u in users for k in (feed_key(u), connections_cache_key(u), stale_cache_key(u))]
    # The same lists in slot order, as a Redis Cluster deployment caches them.
    keys += [k for u in users for k in (slots_cache_key(u), stale_cache_key(u, by_slot=True))]
    keys += [profile_cache_key(u) for u in users]
    await delete_keys(redis, keys)


DELETE_CHUNK = 5000


async def delete_keys(redis: AnyRedis, keys: list[str]) -> None:
    """DEL `keys`, 5,000 at a time: one DEL per chunk on one node.

    On a cluster a DEL may only name keys of one slot, so each chunk becomes one
    DEL per slot, sent in a pipeline: one round trip per master per chunk (the
    client's own multi-key DEL sends every slot's DEL at once and runs out of
    connections on a large graph).
    """
    for start in range(0, len(keys), DELETE_CHUNK):
        chunk = keys[start : start + DELETE_CHUNK]
        if not isinstance(redis, RedisCluster):
            await redis.delete(*chunk)
            continue
        slots: dict[int, list[str]] = {}
        for key in chunk:
            slots.setdefault(key_slot(key.encode()), []).append(key)
        async with redis.pipeline(transaction=False) as pipe:
            for same_slot in slots.values():
                pipe.execute_command("DEL", *same_slot)
            await pipe.execute()


def build_group(h: Harness, options: LoadOptions) -> ProcessGroup | None:
    if options.attach:
        return None
    group = ProcessGroup(h.settings, options.out_dir / "logs")
    if h.settings.connections_source == "grpc":
        group.add_connections_service()
    for i in range(options.workers):
        group.add_worker("feed", i, options.concurrency)
        group.add_worker("search", i, options.concurrency)
    for i in range(options.notifications_workers):
        group.add_worker("notifications", i)
    return group


def worker_ready_urls(group: ProcessGroup | None) -> list[str]:
    """`/readyz` of every started worker (ready: consuming, its dependencies answering)."""
    if group is None:
        return []
    urls = group.metrics_urls()
    return [
        u.removesuffix("/metrics") + "/readyz" for n, u in urls.items() if n.startswith("worker-")
    ]
