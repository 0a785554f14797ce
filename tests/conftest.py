"""Shared fixtures: real PostgreSQL, Redis and a moto server on loopback.

Each test session gets its own database (created, migrated, dropped) and its
own Redis logical database; every test starts from empty tables, an empty
Redis database and a reset moto server, so no test sees another's leftovers.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from moto.server import ThreadedMotoServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio.cluster import ClusterNode, RedisCluster

from config.clients import cluster_startup_nodes, open_sns, open_sqs
from config.feed import FeedRedis
from config.settings import Settings
from config.tracing import start_tracing, stop_tracing
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade
from tests.cluster.servers import LocalCluster
from tests.settings import (
    TEST_DB,
    PortFactory,
    SettingsFactory,
    environment_settings,
    free_port,
    make_settings,
    redis_test_url,
)

_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    # Its per-request lines would land in whatever a test captures once a test has
    # configured logging (the CLI's output, say): the test server is not the subject.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str) -> str:
    """A freshly reset moto server; returns its endpoint URL."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    return moto_url


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = with_database(environment_settings().database_url, TEST_DB)
    await drop_database(url)
    await upgrade(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def pg_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The session's pool over empty tables."""
    async with pg_pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return pg_pool


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(redis_test_url())
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """A real Redis Cluster on loopback for the session: 3 masters, 3 replicas.

    Started by the first test that asks for it, stopped at the session's end,
    failed or not (tests/cluster/servers.py).
    """
    cluster = LocalCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster_url(local_cluster: LocalCluster) -> str:
    """The URL (`redis+cluster://…`) of the session's cluster, emptied for this test."""
    local_cluster.flush()
    return local_cluster.url


@pytest.fixture
async def cluster_client(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A client of the emptied cluster (bytes replies), closed after the test."""
    nodes = [ClusterNode(host, port) for host, port in cluster_startup_nodes(redis_cluster_url)]
    client = RedisCluster(startup_nodes=nodes)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["node", "cluster"])
def redis_topology(request: pytest.FixtureRequest) -> str:
    """Run the test on one Redis node, then on the session's Redis Cluster."""
    return str(request.param)


@pytest.fixture
def feed_redis(redis_topology: str, request: pytest.FixtureRequest) -> FeedRedis:
    """An emptied Redis for the feed paths: the test database on one node, or the
    session's cluster (`redis_topology` says which; the cluster starts only if asked).

    A plain fixture on purpose: it picks an async one by name at set-up time, when no
    event loop is running yet.
    """
    name = "cluster_client" if redis_topology == "cluster" else "redis_client"
    client: FeedRedis = request.getfixturevalue(name)
    return client


@pytest.fixture
def feed_redis_url(redis_topology: str, request: pytest.FixtureRequest) -> str:
    """The REDIS_URL of `feed_redis`, for settings of processes the test starts."""
    if redis_topology == "cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return redis_test_url()


@pytest.fixture
def settings_factory() -> SettingsFactory:
    """Settings on the test services with timings fit for tests: call it with the
    overrides a test needs. Building settings opens nothing, so unit tests can use it too.
    """
    return make_settings


@pytest.fixture
def port_factory() -> PortFactory:
    """Call it for a loopback port nothing listens on right now."""
    return free_port


@pytest.fixture
def kafka_settings_factory(kafka_bootstrap: str) -> SettingsFactory:
    """Settings on the session's broker with fresh topic and group names per call."""

    def build(**overrides: Any) -> Settings:
        uid = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "event_transport": "kafka",
            "kafka_bootstrap_servers": kafka_bootstrap,
            "events_topic": f"events-{uid}",
            "feed_queue": f"feed-{uid}",
            "search_queue": f"search-{uid}",
            "notifications_queue": f"notifications-{uid}",
            "kafka_partitions": 4,
            "kafka_rebalance_timeout_seconds": 1.0,
            "kafka_commit_interval_seconds": 0.2,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A tansu broker (Kafka protocol, memory storage) on a free loopback port.

    Tests name their own topics and groups, so one broker serves the session.
    """
    # Loaded by path: scripts/ holds stand-alone scripts, not an importable package.
    spec = importlib.util.spec_from_file_location("kafka_broker", _ROOT / "scripts/kafka_broker.py")
    assert spec is not None and spec.loader is not None
    script: Any = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # dataclasses resolve annotations through it
    spec.loader.exec_module(script)
    try:
        broker = script.Broker(free_port()).start()
    except script.BrokerError as exc:
        pytest.skip(f"the tansu Kafka broker cannot run here: {exc}")
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def settings(aws: str, database_url: str) -> Settings:
    return make_settings(aws_endpoint_url=aws)


@pytest.fixture
async def sqs(settings: Settings) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:
        yield await open_sqs(stack, settings)


@pytest.fixture
async def sns(settings: Settings) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:
        yield await open_sns(stack, settings)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test: every span this process ends, exported synchronously
    into the SDK's in-memory exporter. Off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = start_tracing(make_settings(), "socialpipe-test", exporter=exporter)
    try:
        yield exporter
    finally:
        stop_tracing(provider)
