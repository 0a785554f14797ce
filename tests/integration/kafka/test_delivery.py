"""Delivery guarantees on Kafka: per-key order, nothing lost mid-batch, clean rebalances."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from config.settings import Settings
from contracts.events import Envelope, UserProfileUpdated
from contracts.outcomes import ACK, Outcome
from tests.factories import post_created, profile_updated
from tests.fakes import ScriptedHandler
from tests.integration.consumers.helpers import wait_until
from tests.integration.kafka.helpers import produce, running, wait_until_ready


async def test_profile_updates_of_one_user_are_handled_in_order(kafka_settings: Settings) -> None:
    # GIVEN 30 updates for each of three users, interleaved, on a 4-partition topic
    users = [uuid.uuid4() for _ in range(3)]
    updates = [profile_updated(user_id=u, version=v) for v in range(1, 31) for u in users]
    await produce(kafka_settings, updates)

    async def slow(_: Envelope, __: int) -> Outcome:
        await asyncio.sleep(0.001)
        return ACK

    handler = ScriptedHandler(slow, max_batch=10)
    seen: list[tuple[uuid.UUID, int]] = []
    original = handler.handle

    async def recording(events: list[Envelope]) -> list[Outcome]:
        for env in events:
            assert isinstance(env.payload, UserProfileUpdated)
            seen.append((env.payload.user_id, env.payload.version or 0))
        return list(await original(events))

    handler.handle = recording  # type: ignore[method-assign,assignment]
    # WHEN the search group consumes them with several chunks in flight
    async with running(kafka_settings, kafka_settings.search_queue, handler, concurrency=4):
        await wait_until(lambda: len(seen) == 90, within=30)
    # THEN each user's versions arrived in the order they were produced
    for user in users:
        assert [v for u, v in seen if u == user] == list(range(1, 31))


async def test_a_worker_stopped_mid_batch_loses_nothing(kafka_settings: Settings) -> None:
    # GIVEN 20 posts, and a worker whose handler hangs on the 5th one it starts
    posts = [post_created() for _ in range(20)]
    await produce(kafka_settings, posts)
    hang = asyncio.Event()

    async def hangs_on_fifth(_: Envelope, __: int) -> Outcome:
        if len(first.started) == 5:
            hang.set()
            await asyncio.sleep(3600)
        return ACK

    first = ScriptedHandler(hangs_on_fifth)
    cfg = kafka_settings.model_copy(update={"shutdown_grace_seconds": 0.2})
    queue = cfg.feed_queue
    # WHEN it is stopped while that event is in the handler (the grace cuts it off)
    async with running(cfg, queue, first, concurrency=1):
        await asyncio.wait_for(hang.wait(), 30)
    # AND a second worker of the group takes over
    second = ScriptedHandler()
    async with running(cfg, queue, second):
        await wait_until(
            lambda: set(first.done) | set(second.done) == {p.event_id for p in posts}, within=30
        )
    # THEN every post was handled to the end, the interrupted one by the second worker
    interrupted = first.started[4]
    assert interrupted not in first.done
    assert interrupted in second.done


async def test_a_second_worker_joining_loses_and_duplicates_nothing(
    kafka_settings: Settings,
) -> None:
    # GIVEN one worker busy with 200 posts spread over 4 partitions
    posts = [post_created() for _ in range(200)]
    await produce(kafka_settings, posts)

    async def slowly(_: Envelope, __: int) -> Outcome:
        await asyncio.sleep(0.04)
        return ACK

    handled: Counter[uuid.UUID] = Counter()
    first, second = ScriptedHandler(slowly), ScriptedHandler(slowly)
    queue = kafka_settings.feed_queue
    async with running(kafka_settings, queue, first, concurrency=2):
        await wait_until(lambda: len(first.done) >= 20, within=30)
        # WHEN a second worker joins the group mid-stream
        async with running(kafka_settings, queue, second, concurrency=2) as joiner:
            await wait_until_ready(joiner)
            await wait_until(lambda: len(set(first.done) | set(second.done)) == 200, within=60)
    handled.update(first.done)
    handled.update(second.done)
    # THEN every post was handled and both workers took part
    assert set(handled) == {p.event_id for p in posts}
    assert second.done, "the joining worker got no partitions"
    # AND repeats stay within at-least-once: at most what was settled but not yet
    # committed when the partitions moved (a commit interval's worth at 2 chunks of 1)
    repeats = sum(n - 1 for n in handled.values())
    assert repeats <= 10, f"{repeats} posts were handled twice"
