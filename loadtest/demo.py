"""`socialpipe demo`: the feed pipeline end to end on embedded defaults, with a short load.

Steps: migrate a demo database, start an SQS/SNS emulator (moto) on a free
loopback port, create the topic and queues, seed a heavy-tailed social graph,
run the feed worker in-process, publish posts at a fixed rate (open loop) and
measure how long each post takes to reach the last of its connections' feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
from moto.server import ThreadedMotoServer

from config.clients import open_redis, open_sns, open_sqs
from config.feed import build_feed_handler
from config.settings import Settings
from consumers.publish import publish_events
from consumers.runtime import SqsConsumer
from consumers.topology import Topology, ensure_topology
from contracts.events import PostCreated, new_envelope
from contracts.keys import connections_cache_key, fanout_marker_key, feed_key
from loadtest.graph import SocialGraph, build_graph, reset_tables, seed_graph
from loadtest.latency import FeedProbe, LatencySummary, OpenLoop, Tick, summarize
from pipelines.feed.enrichment import stale_cache_key
from store.db import create_pool, with_database
from store.migrate import upgrade

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient

PUBLISH_BATCH = 10


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 60.0
    users: int = 300
    rate_per_minute: float = 1000.0
    seed: int = 7
    database: str = "socialpipe_demo"
    concurrency: int = 32
    publishers: int = 2
    drain_seconds: float = 30.0


@dataclass(frozen=True)
class DemoReport:
    users: int
    connections: int
    posts: int
    feed_entries_expected: int
    feed_entries_written: int
    latency: LatencySummary
    not_visible: int
    dlq: int
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = {
            k: (round(v * 1000, 1) if isinstance(v, float) else v)
            for k, v in asdict(self.latency).items()
        }
        data["latency_unit"] = "ms"
        data["elapsed_seconds"] = round(self.elapsed_seconds, 2)
        return data


@dataclass(frozen=True)
class Published:
    post_id: uuid.UUID
    targets: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """An in-process SQS/SNS emulator on a free loopback port; yields its URL."""
    # werkzeug logs every request at INFO; the demo's output is its report.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def demo_settings(base: Settings, options: DemoOptions, endpoint: str) -> Settings:
    return base.model_copy(
        update={
            "database_url": with_database(base.database_url, options.database),
            "aws_endpoint_url": endpoint,
            # Short long-polls so shutdown is quick; latency does not depend on it.
            "receive_wait_seconds": min(base.receive_wait_seconds, 2),
        }
    )


async def forget_feeds(redis: aioredis.Redis, users: Sequence[uuid.UUID]) -> None:
    """Delete the demo users' feeds and cached connections, so counts start from zero."""
    keys = [k for u in users for k in (feed_key(u), connections_cache_key(u), stale_cache_key(u))]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])


async def count_feed_entries(redis: aioredis.Redis, users: Sequence[uuid.UUID]) -> int:
    async with redis.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.llen(feed_key(user))
        lengths = await pipe.execute()
    return sum(int(n) for n in lengths)


async def dlq_depth(sqs: SQSClient, dlq_url: str) -> int:
    got = await sqs.get_queue_attributes(
        QueueUrl=dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    attrs = got.get("Attributes", {})
    return sum(int(v) for v in attrs.values())


class PostPublisher:
    """Turns due ticks into posts: a row in PostgreSQL, then a PostCreated event on SNS."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sns: SNSClient,
        topic_arn: str,
        graph: SocialGraph,
        probe: FeedProbe,
        seed: int,
    ) -> None:
        self.pool, self.sns, self.topic_arn = pool, sns, topic_arn
        self.graph, self.probe = graph, probe
        self.rng = random.Random(seed)
        self.published: list[Published] = []

    async def run(self, ticks: asyncio.Queue[Tick | None]) -> None:
        """Publish until the end marker; due ticks that piled up go out together."""
        while True:
            first = await ticks.get()
            if first is None:
                ticks.put_nowait(None)  # let the other publishers see the end too
                return
            batch = [first]
            while len(batch) < PUBLISH_BATCH and not ticks.empty():
                nxt = ticks.get_nowait()
                if nxt is None:
                    ticks.put_nowait(None)
                    break
                batch.append(nxt)
            await self.publish(batch)

    async def publish(self, ticks: Sequence[Tick]) -> None:
        rows = []
        envelopes = []
        for tick in ticks:
            author = self.rng.choice(self.graph.users)
            post_id = uuid.uuid4()
            at = datetime.fromtimestamp(tick.scheduled_at, UTC)
            rows.append((post_id, author, f"Demo post {tick.index}", at))
            payload = PostCreated(post_id=post_id, author_id=author, created_at=at)
            envelopes.append(new_envelope(payload, producer="demo", occurred_at=at))
            targets = self.graph.targets(author)
            self.probe.watch(post_id, tick.scheduled_at, targets)
            self.published.append(Published(post_id, len(targets)))
        await self.pool.copy_records_to_table(
            "posts", records=rows, columns=["id", "author_id", "text_content", "created_at"]
        )
        await publish_events(self.sns, self.topic_arn, envelopes)


@contextlib.asynccontextmanager
async def running_worker(
    stack: AsyncExitStack, sqs: SQSClient, topology: Topology, settings: Settings, concurrency: int
) -> AsyncIterator[SqsConsumer]:
    """The feed worker, in-process, stopped and drained on the way out."""
    # Each in-flight message may run `fanout_parallelism` Redis batches at once.
    redis = await open_redis(
        stack, settings, max_connections=concurrency * settings.fanout_parallelism + 16
    )
    handler = await build_feed_handler(stack, settings, redis=redis)
    consumer = SqsConsumer(
        sqs,
        queue_name=settings.feed_queue,
        queue_url=topology.queue_url(settings.feed_queue),
        dlq_url=topology.dlq_url(settings.feed_queue),
        handler=handler,
        settings=settings,
        concurrency=concurrency,
    )
    task = asyncio.create_task(consumer.run(), name="demo-feed-worker")
    try:
        yield consumer
    finally:
        consumer.request_stop()
        await asyncio.wait_for(task, timeout=settings.shutdown_grace_seconds + 10)


async def drive_load(publisher: PostPublisher, options: DemoOptions) -> None:
    """Publish at the set rate for the set duration, open loop."""
    ticks: asyncio.Queue[Tick | None] = asyncio.Queue()
    loop = OpenLoop(options.rate_per_minute / 60.0, options.duration)
    workers = [
        asyncio.create_task(publisher.run(ticks), name=f"demo-publisher-{i}")
        for i in range(options.publishers)
    ]
    try:
        await loop.run(ticks)
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def prepare(
    stack: AsyncExitStack, settings: Settings, options: DemoOptions
) -> tuple[asyncpg.Pool, aioredis.Redis, SocialGraph, int]:
    """Migrate, reset and seed the demo database; clear the demo users' Redis keys."""
    await upgrade(settings.database_url)
    pool = await create_pool(settings.database_url, max_size=4)
    stack.push_async_callback(pool.close)
    redis = await open_redis(stack, settings, max_connections=8)
    graph = build_graph(options.users, seed=options.seed)
    await reset_tables(pool)
    seeded = await seed_graph(pool, graph)
    await forget_feeds(redis, graph.users)
    return pool, redis, graph, seeded.connections


async def run_demo(base: Settings, options: DemoOptions) -> DemoReport:
    """Run the whole demo and return its report; everything started is stopped on exit."""
    started = time.monotonic()
    with moto_server() as endpoint:
        settings = demo_settings(base, options, endpoint)
        async with AsyncExitStack() as stack:
            pool, redis, graph, connections = await prepare(stack, settings, options)
            sqs = await open_sqs(stack, settings, pool=options.concurrency + 8)
            sns = await open_sns(stack, settings)
            topology = await ensure_topology(sqs, sns, settings)
            probe = FeedProbe(redis)
            publisher = PostPublisher(pool, sns, topology.topic_arn, graph, probe, options.seed)
            async with running_worker(stack, sqs, topology, settings, options.concurrency):
                await measure(publisher, probe, options)
            await forget_markers(publisher)
            return DemoReport(
                users=len(graph.users),
                connections=connections,
                posts=len(publisher.published),
                feed_entries_expected=sum(p.targets for p in publisher.published),
                feed_entries_written=await count_feed_entries(redis, graph.users),
                latency=summarize(probe.latencies),
                not_visible=len(probe.pending),
                dlq=await dlq_depth(sqs, topology.dlq_url(settings.feed_queue)),
                elapsed_seconds=time.monotonic() - started,
            )


async def measure(publisher: PostPublisher, probe: FeedProbe, options: DemoOptions) -> None:
    """Drive the load while probing, then wait (bounded) for the last posts to land."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(probe.run(stop), name="demo-probe")
    try:
        await drive_load(publisher, options)
    finally:
        stop.set()
        await watcher
    await probe.drain(options.drain_seconds)


async def forget_markers(publisher: PostPublisher) -> None:
    """Fan-out markers of demo posts would otherwise linger until their TTL."""
    redis = publisher.probe.redis
    keys = [fanout_marker_key(p.post_id) for p in publisher.published]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])
