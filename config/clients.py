"""Client builders for one process. Nothing here runs at import time."""

from __future__ import annotations

import contextlib
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as redis
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from config.settings import Settings
from contracts.outcomes import Probe
from store.redis_cluster import WaitingRedisCluster

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient


def aws_client_kwargs(settings: Settings, *, pool: int = 10) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        "config": AioConfig(
            max_pool_connections=pool,
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=max(30, settings.receive_wait_seconds + 10),
        ),
    }
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
        # Local emulators accept any credentials; real AWS uses the default chain.
        kwargs["aws_access_key_id"] = settings.aws_access_key_id or "test"
        kwargs["aws_secret_access_key"] = settings.aws_secret_access_key or "test"
    return kwargs


async def open_sqs(stack: AsyncExitStack, settings: Settings, *, pool: int = 10) -> SQSClient:
    """One SQS client whose connection pool fits pollers + deletes + heartbeats."""
    client = get_session().create_client("sqs", **aws_client_kwargs(settings, pool=pool))
    return await stack.enter_async_context(client)


async def open_sns(stack: AsyncExitStack, settings: Settings, *, pool: int = 10) -> SNSClient:
    client = get_session().create_client("sns", **aws_client_kwargs(settings, pool=pool))
    return await stack.enter_async_context(client)


AnyRedis = redis.Redis | RedisCluster


async def open_any_redis(
    stack: AsyncExitStack, settings: Settings, *, max_connections: int = 32
) -> AnyRedis:
    """The Redis of the notifications worker, the API, the reconcilers and the load tester.

    A `redis+cluster://` REDIS_URL gives a cluster client (`open_redis_cluster`:
    MOVED/ASK followed, nothing else retried, `max_connections` per node); any
    other URL one node's client (`open_redis`). Both take the same keys.
    """
    if is_cluster_url(settings.redis_url):
        client = open_redis_cluster(stack, settings.redis_url, max_connections=max_connections)
        await warm_up_cluster(client)
        return client
    return await open_redis(stack, settings, max_connections=max_connections)


async def warm_up_cluster(client: RedisCluster) -> None:
    """Learn the cluster's slots now, before concurrent commands arrive.

    The client learns them lazily, on its first command; when many commands are
    its first at once (a worker's first burst of messages), each starts that
    discovery and they close one another's connections: "Connection closed by
    server", "unable to perform operation on <TCPTransport …>", "'NoneType'
    object has no attribute 'writelines'". A cluster that does not answer yet is
    left to that lazy discovery, as before (the start-up probe reports it).
    """
    with contextlib.suppress(RedisError, OSError):
        await client.initialize()


async def open_redis(
    stack: AsyncExitStack, settings: Settings, *, max_connections: int = 32
) -> redis.Redis:
    """One Redis node's client, for callers that need a node (its INFO, say).

    A `redis+cluster://` REDIS_URL is refused: such callers use `open_any_redis`.
    """
    if is_cluster_url(settings.redis_url):
        raise ValueError("REDIS_URL names a Redis Cluster; this command needs one Redis node's URL")
    return waiting_redis(stack, settings.redis_url, max_connections=max_connections)


# How long a caller waits for one of the pool's connections before failing.
POOL_WAIT_SECONDS = 2.0


def waiting_redis(
    stack: AsyncExitStack,
    url: str,
    *,
    max_connections: int,
    wait_seconds: float = POOL_WAIT_SECONDS,
) -> redis.Redis:
    """One node's client whose callers wait up to `wait_seconds` for a connection
    when all `max_connections` are in use, instead of failing at once with "Too
    many connections": a burst (an API request's aliases, concurrent fan-outs)
    queues for a moment; only a pool held for that long is an error."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_seconds,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=no_client_retries(),
    )
    client = redis.Redis.from_pool(pool)
    stack.push_async_callback(client.aclose)
    return client


CLUSTER_SCHEME = "redis+cluster://"


def is_cluster_url(url: str) -> bool:
    """Whether REDIS_URL names a Redis Cluster (`redis+cluster://host:port[,host:port]/0`)."""
    return url.startswith(CLUSTER_SCHEME)


def cluster_startup_nodes(url: str) -> list[tuple[str, int]]:
    """The seed nodes of a `redis+cluster://` URL; the client discovers the others.

    A cluster has one database, 0: any other number is a configuration mistake.
    """
    rest = url.removeprefix(CLUSTER_SCHEME)
    hosts, _, database = rest.partition("/")
    if database not in ("", "0"):
        raise ValueError(f"A Redis Cluster has only database 0, not {database!r}: {url}")
    nodes = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"Expected host:port in REDIS_URL {url!r}, got {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def open_redis_cluster(
    stack: AsyncExitStack, url: str, *, max_connections: int = 32
) -> RedisCluster:
    """A Redis Cluster client that follows MOVED/ASK redirects and retries nothing else.

    `retry=no_client_retries()` means one attempt per command: the client still
    follows a redirect within that attempt (it must, to reach the key's node), but
    TRYAGAIN, CLUSTERDOWN and connection failures surface to the caller, whose
    layer decides (the feed store retries the affected feeds, the invoker the rest).
    `max_connections` is per node, and callers beyond it wait for a connection
    (`store/redis_cluster.py`), as they do on a single node's blocking pool.
    """
    client = WaitingRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_startup_nodes(url)],
        max_connections=max_connections,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=no_client_retries(),
    )
    stack.push_async_callback(client.aclose)
    return client


def no_client_retries() -> Retry:
    """Redis clients call once: the runtime's invoker is the one layer that retries."""
    return Retry(NoBackoff(), 0)


def postgres_probe(pool: asyncpg.Pool) -> Probe:
    """A readiness probe of PostgreSQL through `pool` (`SELECT 1`)."""

    async def probe() -> object:
        return await pool.fetchval("SELECT 1")

    return probe
