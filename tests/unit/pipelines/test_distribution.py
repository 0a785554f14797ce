"""Distribution of a fan-out plan over a fake feed store."""

from __future__ import annotations

import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pipelines.feed.distribution import Distributor
from tests.fakes import FakeFeedStore, FlakyFeedStore
from transforms.fanout import plan_fanout

POST = uuid.UUID(int=1)
AUTHOR = uuid.UUID(int=2)


def people(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=100 + i) for i in range(n)]


async def test_at_most_parallelism_batches_are_in_flight() -> None:
    # GIVEN 20 batches and a parallelism of 3
    store = FakeFeedStore(pause=0.005)
    plan = plan_fanout(POST, AUTHOR, people(200), batch_size=10)

    # WHEN distributed
    report = await Distributor(store, parallelism=3).distribute(plan, owner="o", careful=False)

    # THEN all were served with never more than 3 round trips at once
    assert report.written == 200
    assert store.max_in_flight == 3
    assert len(store.calls) == 20


async def test_failed_targets_are_pushed_once_and_reported() -> None:
    # GIVEN one broken feed among 10, in one batch
    store = FakeFeedStore()
    recipients = people(10)
    store.broken.add(recipients[4])
    plan = plan_fanout(POST, AUTHOR, recipients, batch_size=10)

    # WHEN distributed
    report = await Distributor(store, parallelism=2).distribute(plan, owner="o", careful=False)

    # THEN the batch was pushed once (the invoker, not the distributor, retries),
    # the broken target is reported, the 9 others were served
    digest = plan.batches[0].digest
    assert store.calls == [(digest, 10)]
    assert report.failed == [recipients[4]]
    assert report.written == 9
    # AND the batch is not marked done, so a next attempt serves what is missing
    assert (POST, digest) not in store.done


async def test_the_next_attempt_serves_only_what_is_missing_and_marks_the_batch_done() -> None:
    # GIVEN a distribution that left one feed unwritten, and that feed healed since
    store = FakeFeedStore()
    recipients = people(5)
    store.broken.add(recipients[0])
    plan = plan_fanout(POST, AUTHOR, recipients, batch_size=5)
    distributor = Distributor(store, parallelism=1)
    first = await distributor.distribute(plan, owner="o1", careful=False)
    store.broken.clear()

    # WHEN the handler's next attempt distributes the plan again, checking first
    again = await distributor.distribute(plan, owner="o2", careful=True)

    # THEN only the missing feed was written, the others skipped, nothing failed,
    # and the batch digest is now recorded as done
    assert first.failed == [recipients[0]]
    assert (again.written, again.skipped, again.failed) == (1, 4, [])
    assert (POST, plan.batches[0].digest) in store.done
    assert all(store.feeds[r] == [POST] for r in recipients)


async def test_batches_already_done_are_not_pushed_again() -> None:
    # GIVEN a plan of 3 batches, fully distributed once
    store = FakeFeedStore()
    plan = plan_fanout(POST, AUTHOR, people(30), batch_size=10)
    distributor = Distributor(store, parallelism=2)
    await distributor.distribute(plan, owner="o1", careful=False)

    # WHEN it is distributed again (a redelivery)
    report = await distributor.distribute(plan, owner="o2", careful=True)

    # THEN every batch is found done and no feed was written twice
    assert (report.batches_already_done, report.written, report.failed) == (3, 0, [])
    assert all(store.feeds[r] == [POST] for r in people(30))


async def test_a_store_failure_escapes_as_the_one_error_it_was() -> None:
    # GIVEN a feed store whose connection is reset on every push
    store = FlakyFeedStore(FakeFeedStore(), failures=100)
    plan = plan_fanout(POST, AUTHOR, people(40), batch_size=10)

    # WHEN distributed with batches in parallel
    # THEN the store's own error escapes (not a group) for the runtime to classify,
    # and no batch was pushed again in the distributor
    with pytest.raises(RedisConnectionError):
        await Distributor(store, parallelism=3).distribute(plan, owner="o", careful=False)
    assert store.calls <= 3


async def test_the_careful_mark_is_read_at_most_once_a_second() -> None:
    # GIVEN a store with a careful-until mark, read once
    store = FakeFeedStore()
    store.careful_mark = 100.0
    distributor = Distributor(store, parallelism=1)
    assert await distributor.careful_until() == 100.0

    # WHEN the mark changes right after
    store.careful_mark = 200.0

    # THEN the distributor still answers the mark it read, within the second
    assert await distributor.careful_until() == 100.0


async def test_empty_plan_touches_nothing() -> None:
    # GIVEN a plan with no recipient but the author
    store = FakeFeedStore()
    plan = plan_fanout(POST, AUTHOR, [AUTHOR], batch_size=10)

    # WHEN distributed
    report = await Distributor(store, parallelism=4).distribute(plan, owner="o", careful=False)

    # THEN no round trip was made
    assert report.written == 0
    assert store.calls == []
