"""The feed worker reading through the Connections Service while the service is
SIGKILLed mid-load and started again: the breaker opens, posts keep reaching every
feed from the cached lists, the breaker closes once the service is back, and no
post is lost or duplicated."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as redis_asyncio

from config.settings import Settings
from consumers.publish import send_raw
from consumers.topology import Topology
from contracts.events import Envelope
from tests.integration.connections_service.servers import ServiceFactory
from tests.integration.consumers.helpers import depth
from tests.integration.feed_over_sqs.helpers import (
    FEED,
    eventually,
    feed_worker,
    feeds_holding,
    metric,
    running,
)
from tests.integration.pipelines.feed.helpers import add_users, connect, create_post, post_id
from tests.settings import SettingsFactory

AUTHORS = 4
FRIENDS = 15
RATE = 20.0  # posts a second, round robin over the authors
BREAKER = "socialpipe_circuit_breaker_state"


@dataclass
class Load:
    """Posts sent at a steady rate until stopped, each with the time it was sent."""

    db: asyncpg.Pool
    sqs: Any
    topo: Topology
    authors: list[uuid.UUID]
    sent: list[tuple[float, uuid.UUID, Envelope]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            author = self.authors[n % len(self.authors)]
            event = await create_post(self.db, author)
            await send_raw(self.sqs, self.topo.queue_url(FEED), event.to_json(), event.attributes())
            self.sent.append((time.monotonic(), author, event))
            n += 1
            await asyncio.sleep(1 / RATE)


async def wait_state(state: int, within: float) -> float:
    async def reached() -> bool:
        return metric(BREAKER, breaker="connections") == state

    await eventually(reached, within=within, what=f"breaker state {state}")
    return time.monotonic()


async def all_served(
    redis: redis_asyncio.Redis, friends: dict[uuid.UUID, list[uuid.UUID]], load: Load
) -> bool:
    for _, author, event in list(load.sent):
        held = await feeds_holding(redis, friends[author], post_id(event))
        if set(held.values()) != {1}:
            return False
    return True


async def test_breaker_opens_on_sigkill_serves_cached_lists_and_closes_on_return(
    db: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    sqs: Any,
    topo: Topology,
    settings: Settings,
    settings_factory: SettingsFactory,
    service_factory: ServiceFactory,
    stack: AsyncExitStack,
) -> None:
    # GIVEN authors with connections, a service, and a worker reading through it whose
    # fresh cached lists last 1 s (so reads keep reaching the service under load)
    authors = await add_users(db, AUTHORS)
    friends = {author: await add_users(db, FRIENDS) for author in authors}
    for author, theirs in friends.items():
        await connect(db, author, theirs)
    service = service_factory().start()
    cfg = settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url,
        connections_source="grpc",
        connections_service_addr=service.address,
        connections_cache_ttl=1,
        breaker_min_calls=4,
        breaker_failure_rate=0.5,
        breaker_open_seconds=1.0,
    )
    consumer, _ = await feed_worker(stack, sqs, cfg, topo)
    load = Load(db, sqs, topo, authors)
    async with running(consumer):
        sender = asyncio.create_task(load.run())
        try:
            await eventually(lambda: all_served(redis_client, friends, load), what="warm-up")
            await asyncio.sleep(1.5)  # every author's list cached
            # WHEN the service is SIGKILLed under load
            killed = time.monotonic()
            await asyncio.to_thread(service.kill)
            opened = await wait_state(2, within=15)
            # THEN the breaker opens, and posts keep reaching every feed meanwhile
            await asyncio.sleep(2.0)
            await eventually(
                lambda: all_served(redis_client, friends, load), what="served while down"
            )
            # WHEN the service comes back on the same address
            restarted = time.monotonic()
            await asyncio.to_thread(service.start)
            back = time.monotonic()
            # THEN the breaker closes
            closed = await wait_state(0, within=20)
            await asyncio.sleep(0.5)
        finally:
            load.stop.set()
            await sender
        # AND every post sent reached every connection's feed exactly once
        await eventually(lambda: all_served(redis_client, friends, load), what="all served")
    assert await depth(sqs, topo.dlq_url(FEED)) == 0
    during = [s for s in load.sent if killed <= s[0] < restarted]
    assert len(during) >= 10
    print(
        f"\nbreaker: open {opened - killed:.2f} s after SIGKILL, closed {closed - back:.2f} s"
        f" after the service answered again ({back - restarted:.2f} s to restart);"
        f" {len(during)} of {len(load.sent)} posts sent while it was down, all served"
    )
