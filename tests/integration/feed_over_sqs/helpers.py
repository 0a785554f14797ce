"""The real feed handler driven by the SQS consumer runtime against moto, PostgreSQL
and Redis: builders for the worker, a social graph, and waits with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.feed import FeedRedis, build_feed_handler
from config.settings import Settings
from config.worker import consumer_options
from consumers.runtime import SqsConsumer
from consumers.topology import Topology
from contracts.keys import feed_key
from pipelines.feed.handler import FeedHandler
from pipelines.feed.ports import ConnectionSource
from tests.integration.pipelines.feed.helpers import add_users, connect

FEED = "feed-fanout"


@dataclass(frozen=True, slots=True)
class Graph:
    """An author, connections in both directions, and users who must get nothing."""

    author: uuid.UUID
    requested_by_author: list[uuid.UUID]
    requested_author: list[uuid.UUID]
    pending: uuid.UUID
    declined: uuid.UUID
    stranger: uuid.UUID

    @property
    def connections(self) -> list[uuid.UUID]:
        return [*self.requested_by_author, *self.requested_author]

    @property
    def outsiders(self) -> list[uuid.UUID]:
        return [self.pending, self.declined, self.stranger]


async def small_graph(db: asyncpg.Pool) -> Graph:
    author, a1, a2, b1, b2, pending, declined, stranger = await add_users(db, 8)
    await connect(db, author, [a1, a2])
    for other in (b1, b2):
        await connect(db, other, [author])
    await connect(db, author, [pending], status="pending")
    await connect(db, declined, [author], status="declined")
    return Graph(author, [a1, a2], [b1, b2], pending, declined, stranger)


async def feed_worker(
    stack: AsyncExitStack,
    sqs: Any,
    settings: Settings,
    topo: Topology,
    *,
    concurrency: int = 4,
    **overrides: Any,
) -> tuple[SqsConsumer, FeedHandler]:
    """The feed handler as `socialpipe worker feed` builds it, under an SqsConsumer."""
    handler = await build_feed_handler(stack, settings, **overrides)
    consumer = SqsConsumer(
        sqs,
        queue_name=FEED,
        queue_url=topo.queue_url(FEED),
        dlq_url=topo.dlq_url(FEED),
        handler=handler,
        options=consumer_options(settings),
        concurrency=concurrency,
    )
    return consumer, handler


@contextlib.asynccontextmanager
async def running(consumer: SqsConsumer) -> AsyncIterator[asyncio.Task[None]]:
    """Run a consumer in the background; stop and drain it on exit."""
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, 30)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 15.0, what: str = "condition"
) -> None:
    """Poll an async check until it holds, failing after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        await asyncio.sleep(0.05)


class FlakyPool(redis_asyncio.BlockingConnectionPool):
    """A Redis pool whose first `failures` connection checkouts raise `error`: by default
    ConnectionError, as when Redis restarts or a failover moves its address (an outage);
    a TimeoutError is a hiccup instead."""

    def __init__(
        self,
        *args: Any,
        failures: int,
        error: type[RedisError] = RedisConnectionError,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures
        self.error = error
        self.checkouts = 0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.checkouts += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error(f"{self.error.__name__} checking out a connection (injected).")
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def flaky_redis(
    url: str, failures: int, error: type[RedisError] = RedisConnectionError
) -> tuple[redis_asyncio.Redis, FlakyPool]:
    pool = FlakyPool.from_url(url, failures=failures, error=error, max_connections=32, timeout=10)
    return redis_asyncio.Redis.from_pool(pool), pool


class ReadsTimingOutRedis(redis_asyncio.Redis):
    """A Redis client that answers PING (its health probe) but times out on every
    other command: a Redis that is up yet too slow to serve the worker."""

    timeouts = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() != "PING":
            self.timeouts += 1
            raise RedisTimeoutError("Timeout reading from socket (injected).")
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def reads_timing_out(url: str) -> ReadsTimingOutRedis:
    client = ReadsTimingOutRedis.from_url(url)
    assert isinstance(client, ReadsTimingOutRedis)
    return client


async def feeds_holding(
    client: FeedRedis, users: list[uuid.UUID], post: str
) -> dict[uuid.UUID, int]:
    """How often each user's feed holds `post`."""
    async with client.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.lrange(feed_key(user), 0, -1)
        feeds = await pipe.execute()
    return {u: [_text(v) for v in f].count(post) for u, f in zip(users, feeds, strict=True)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SwitchableSource:
    """The PostgreSQL connection source behind a switch: while `down`, every read of
    connections raises."""

    def __init__(self, inner: ConnectionSource) -> None:
        self._inner = inner
        self.down = False
        self.failed_reads = 0

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        # The switch breaks connection reads only: the post check always answers.
        return await self._inner.post_exists(post_id, author_id)

    async def accepted_connections(self, user_id: uuid.UUID) -> Sequence[uuid.UUID]:
        if self.down:
            self.failed_reads += 1
            raise OSError(f"connection refused reading the connections of {user_id}")
        return await self._inner.accepted_connections(user_id)


async def visible(sqs: Any, url: str) -> int:
    """How many messages of the queue are receivable now (not in flight, not delayed)."""
    got = await sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(got["Attributes"]["ApproximateNumberOfMessages"])


def metric(name: str, **labels: str) -> float:
    """The current value of one of our Prometheus samples (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
