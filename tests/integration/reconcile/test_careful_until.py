"""The careful-until mark a real `reconcile feeds` holds for the feed workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as redis_asyncio

from contracts.keys import careful_until_key
from reconcile.careful import CarefulUntil, stamp
from tests.integration.reconcile.pipeline_state import feed_reconciler

KEY = careful_until_key()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def mark(client: redis_asyncio.Redis) -> float | None:
    raw = await client.get(KEY)
    return None if raw is None else float(raw)


async def poll(check: Callable[[], Awaitable[bool]], deadline: float = 5.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


def test_the_key_is_named_for_the_feed_workers() -> None:
    assert careful_until_key() == "fanout:careful-until"


async def test_a_run_holds_the_mark_an_hour_ahead_then_sixty_seconds_past_its_end(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN no mark
    clock = Clock()
    careful = CarefulUntil(redis_client, KEY, clock=clock, refresh_every=60)
    # WHEN a run holds it and ends 90 s later
    async with careful.held():
        during = await mark(redis_client)
        clock.now += 90
    # THEN it stood an hour ahead while running, and 60 s past the end afterwards
    assert during == clock.now - 90 + 3600
    assert await redis_client.get(KEY) == stamp(clock.now + 60).encode()


async def test_a_long_run_refreshes_the_mark(redis_client: redis_asyncio.Redis) -> None:
    clock = Clock()
    careful = CarefulUntil(redis_client, KEY, clock=clock, refresh_every=0.01)
    async with careful.held():
        # WHEN two hours pass during the run
        clock.now += 7200

        async def refreshed() -> bool:
            return await mark(redis_client) == clock.now + 3600

        # THEN the mark moves to an hour past the new time
        assert await poll(refreshed)
    assert await mark(redis_client) == clock.now + 60


async def test_the_mark_is_never_lowered_below_another_writers_later_value(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a mark ten hours ahead, set by another run
    clock = Clock()
    later = stamp(clock.now + 36_000)
    await redis_client.set(KEY, later)
    careful = CarefulUntil(redis_client, KEY, clock=clock, refresh_every=60)
    # WHEN a run holds and releases it
    async with careful.held():
        assert await redis_client.get(KEY) == later.encode()
    # THEN the later value stands
    assert await redis_client.get(KEY) == later.encode()


async def test_a_value_raised_by_another_run_meanwhile_survives_our_end(
    redis_client: redis_asyncio.Redis,
) -> None:
    clock = Clock()
    careful = CarefulUntil(redis_client, KEY, clock=clock, refresh_every=60)
    async with careful.held():
        # WHEN another run raises the mark past ours while we run
        other = CarefulUntil(redis_client, KEY, clock=lambda: clock.now + 600)
        await other.raise_to(clock.now + 600 + 3600)
    # THEN our end leaves its value
    assert await mark(redis_client) == clock.now + 4200


async def test_reconcile_feeds_sets_the_mark_and_a_dry_run_does_not(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # WHEN a dry run reconciles (no users at all)
    await feed_reconciler(db, redis_client, 10, dry_run=True).run()
    # THEN the mark was not touched
    assert await redis_client.get(KEY) is None
    # WHEN a real run reconciles
    started = time.time()
    await feed_reconciler(db, redis_client, 10).run()
    ended = time.time()
    # THEN the mark stands 60 s past the run's end
    value = await mark(redis_client)
    assert value is not None and started + 60 <= value <= ended + 60.01
