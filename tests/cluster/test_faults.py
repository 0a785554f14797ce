"""Faults on a real Redis Cluster during a 12,000-feed fan-out, over SQS.

A feed worker (the composition root's handler under the SQS runtime, moto over
HTTP) consumes one PostCreated whose author has 12,000 connections, while:

* a master is SIGKILLed: its replica is promoted, the message is retried, and
  no feed holds the post twice; what the promoted replica lost (writes its
  master acknowledged but had not replicated: its link is cut just before the
  kill) is counted, then repaired by `reconcile feeds` (its composition root,
  over the same graph in PostgreSQL) for those users, and counted again;
* slots are resharded back and forth between two masters with
  `redis-cli --cluster reshard`: nothing is lost, nothing duplicated.

Each test runs on a private cluster that it tears down: the session's cluster
is never damaged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from config.clients import open_sns, open_sqs
from config.feed import build_feed_handler
from config.reconcile import build_feed_reconciler
from config.settings import Settings
from config.worker import consumer_options, pipeline_queue
from consumers.publish import send_raw
from consumers.runtime import SqsConsumer
from consumers.topology import ensure_topology
from contracts.events import Envelope, PostCreated
from contracts.keys import fanout_marker_key
from pipelines.feed.cluster_feeds import UNCHECKED_LEASE_MS
from reconcile.feeds import FeedReconcileOptions
from tests.cluster.faults import (
    Node,
    Tally,
    cluster_client,
    cluster_nodes,
    frozen,
    kill,
    masters,
    reshard,
    serves,
    start_replicated,
    tally,
    wait_for_promotion,
)
from tests.cluster.servers import LocalCluster
from tests.factories import post_created
from tests.fakes import FakeConnectionSource
from tests.integration.consumers.helpers import depth
from tests.outage.servers import LOOPBACK
from tests.settings import make_settings

FRIENDS = 12_000
DRAIN_SECONDS = 45.0
RESHARD_SLOTS = 300
RESHARD_RUNS = 8
UNREPLICATED_SECONDS = 0.05


@pytest.fixture
def private_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own: the faults below damage it."""
    cluster = LocalCluster()
    try:
        start_replicated(cluster)
        yield cluster
    finally:
        cluster.close()


@dataclass
class Worker:
    sqs: Any
    queue_url: str
    dlq_url: str
    consumer: SqsConsumer

    async def send(self, event: Envelope) -> None:
        await send_raw(self.sqs, self.queue_url, event.to_json(), event.attributes())

    async def drained(self, within: float = DRAIN_SECONDS) -> None:
        deadline = time.monotonic() + within
        while await depth(self.sqs, self.queue_url):
            if time.monotonic() > deadline:
                raise AssertionError(f"the feed queue did not drain within {within} s")
            await asyncio.sleep(0.1)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


def _settings(aws: str, cluster: LocalCluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "aws_endpoint_url": aws,
        "redis_url": cluster.url,
        "visibility_timeout": 10,
        "max_receive_count": 20,  # the failover outlasts the default budget's backoffs
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
    }
    values.update(overrides)
    return make_settings(**values)


async def _running_worker(
    stack: AsyncExitStack, settings: Settings, source: FakeConnectionSource
) -> Worker:
    sqs = await open_sqs(stack, settings)
    topo = await ensure_topology(sqs, await open_sns(stack, settings), settings)
    queue = pipeline_queue(settings, "feed")
    handler = await build_feed_handler(stack, settings, connection_source=source)
    consumer = SqsConsumer(
        sqs,
        queue_name=queue,
        queue_url=topo.queue_url(queue),
        dlq_url=topo.dlq_url(queue),
        handler=handler,
        options=consumer_options(settings),
        concurrency=4,
    )
    running = asyncio.create_task(consumer.run())

    async def stop() -> None:
        consumer.request_stop()
        await asyncio.wait_for(running, 30)

    stack.push_async_callback(stop)
    return Worker(sqs, topo.queue_url(queue), topo.dlq_url(queue), consumer)


def _fan_out(source: FakeConnectionSource) -> tuple[list[uuid.UUID], Envelope]:
    author, friends = uuid.uuid4(), [uuid.uuid4() for _ in range(FRIENDS)]
    source.connect(author, *friends)
    return friends, post_created(author_id=author)


async def _in_postgres(db: asyncpg.Pool, event: Envelope, friends: list[uuid.UUID]) -> None:
    """The same graph and post in PostgreSQL, the truth `reconcile feeds` reads."""
    payload = event.payload
    assert isinstance(payload, PostCreated)
    users = [payload.author_id, *friends]
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "users", records=[(u, f"{u}@example.test") for u in users], columns=["id", "email"]
        )
        await conn.copy_records_to_table(
            "connections",
            records=[(payload.author_id, f, "accepted") for f in friends],
            columns=["requester_id", "addressee_id", "status"],
        )
        await conn.execute(
            "INSERT INTO posts (id, author_id, text_content, created_at) VALUES ($1, $2, 'x', $3)",
            payload.post_id,
            payload.author_id,
            payload.created_at,
        )


async def _kill_when_written(cluster: LocalCluster, victim: Node, replica: Node, keys: int) -> int:
    """Once `victim` holds `keys` keys, its replica is cut off (stopped, its link
    closed) for a moment while the fan-out goes on; then `victim` is SIGKILLed. The
    writes it acknowledged meanwhile never reach the replica. The keys it held then."""
    client = aioredis.Redis(host=LOOPBACK, port=victim.port, socket_timeout=2.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if int(await client.dbsize()) >= keys:
                with frozen(cluster, replica.port):
                    await client.client_kill_filter(_type="replica")
                    await asyncio.sleep(UNREPLICATED_SECONDS)
                    held = int(await client.dbsize())
                    kill(cluster, victim.port)
                return held
            await asyncio.sleep(0.002)
    finally:
        await client.aclose(close_connection_pool=True)
    raise AssertionError(f"the fan-out never wrote {keys} keys on {victim.port}")


def _line(name: str, counts: Tally) -> str:
    return f"{name}: once={counts.once} missing={len(counts.missing)} dup={len(counts.duplicated)}"


@pytest.mark.timeout(90)
async def test_a_master_killed_mid_fan_out_leaves_no_duplicate_and_reconcile_fills_the_gaps(
    aws: str, private_cluster: LocalCluster, stack: AsyncExitStack, db: asyncpg.Pool
) -> None:
    # GIVEN a worker fanning out one post to 12,000 feeds, batch by batch
    source = FakeConnectionSource()
    friends, event = _fan_out(source)
    await _in_postgres(db, event, friends)
    post = event.payload.post_id  # type: ignore[union-attr]
    settings = _settings(aws, private_cluster, fanout_batch_size=100, fanout_parallelism=1)
    worker = await _running_worker(stack, settings, source)
    marker_slot = key_slot(fanout_marker_key(post).encode())
    seed = private_cluster.ports[0]
    # The victim is not the marker's node: the rest of the post goes on being served.
    victim = next(m for m in masters(seed) if not serves(seed, m, marker_slot))
    replica = next(n for n in cluster_nodes(seed) if n.master_id == victim.node_id)

    # WHEN its master is SIGKILLed mid fan-out, and its replica promoted
    started = time.monotonic()
    killer = asyncio.create_task(_kill_when_written(private_cluster, victim, replica, keys=400))
    await worker.send(event)
    held_at_kill = await killer
    killed_at = time.monotonic() - started
    promotion = await wait_for_promotion(private_cluster, victim)
    await worker.drained()
    done_at = time.monotonic() - started

    # THEN no feed holds the post twice; what the replica lost is counted…
    client = cluster_client(private_cluster.url)
    stack.push_async_callback(client.aclose)
    before = await tally(client, friends, post)
    assert held_at_kill < FRIENDS // 4, "the master was killed after its share was written"
    assert before.duplicated == []
    assert before.missing, "the promoted replica lost none of its master's last writes"

    # …and `reconcile feeds` for those users writes exactly the missing entries
    options = FeedReconcileOptions(user_ids=tuple(friends), max_length=settings.feed_max_length)
    async with AsyncExitStack() as run:
        repair = await (await build_feed_reconciler(run, settings, options)).run()
    async with AsyncExitStack() as run:
        recheck = await (await build_feed_reconciler(run, settings, options)).run()
    after = await tally(client, friends, post)
    print(
        f"\nfailover: killed {victim.port} at {killed_at:.2f} s holding {held_at_kill} keys;"
        f" replica promoted in {promotion:.2f} s; queue drained at {done_at:.2f} s;"
        f" {_line('before repair', before)}; reconcile: missing={repair.missing}"
        f" duplicate={repair.duplicate} repaired={repair.repaired} in {repair.duration:.2f} s;"
        f" {_line('after repair', after)}"
    )
    assert (repair.missing, repair.duplicate, repair.extra) == (len(before.missing), 0, 0)
    assert (recheck.missing, recheck.duplicate, recheck.repaired) == (0, 0, 0)
    assert (after.once, after.missing, after.duplicated) == (FRIENDS, [], [])
    assert await depth(worker.sqs, worker.dlq_url) == 0
    # AND the failed attempt gave its batch's lease up once the cluster answered
    # again: the redelivery did not wait the lease out
    waited = done_at - killed_at - promotion
    assert waited < UNCHECKED_LEASE_MS / 1000 - 5, f"drained {waited:.2f} s after the promotion"


@pytest.mark.timeout(90)
async def test_slots_resharded_during_a_fan_out_lose_and_duplicate_nothing(
    aws: str, private_cluster: LocalCluster, stack: AsyncExitStack
) -> None:
    # GIVEN a worker and two masters to move slots between
    source = FakeConnectionSource()
    friends, event = _fan_out(source)
    post = event.payload.post_id  # type: ignore[union-attr]
    settings = _settings(aws, private_cluster, fanout_batch_size=100, fanout_parallelism=2)
    worker = await _running_worker(stack, settings, source)
    seed = private_cluster.ports[0]
    a, b = masters(seed)[:2]
    fanned_out = asyncio.Event()
    runs: list[float] = []

    async def back_and_forth() -> None:
        for run in range(RESHARD_RUNS):
            src, dst = (a, b) if run % 2 == 0 else (b, a)
            moved = await reshard(private_cluster.ports, src.node_id, dst.node_id, RESHARD_SLOTS)
            runs.append(moved)
            if fanned_out.is_set():
                return

    # WHEN slots move back and forth while the post fans out
    started = time.monotonic()
    moving = asyncio.create_task(back_and_forth())
    await asyncio.sleep(0.3)  # the first slots are on the move
    await worker.send(event)
    try:
        await worker.drained()
    finally:
        fanned_out.set()
        fan_out = time.monotonic() - started - 0.3
        await moving

    # THEN every feed holds the post exactly once
    client = cluster_client(private_cluster.url)
    stack.push_async_callback(client.aclose)
    counts = await tally(client, friends, post)
    print(
        f"\nresharding: {len(runs)} reshards of {RESHARD_SLOTS} slots"
        f" ({', '.join(f'{r:.2f}' for r in runs)} s) around a {fan_out:.2f} s fan-out;"
        f" {_line('feeds', counts)}"
    )
    assert (counts.once, counts.missing, counts.duplicated) == (FRIENDS, [], [])
    assert await depth(worker.sqs, worker.dlq_url) == 0
