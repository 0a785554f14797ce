"""Distribution of a fan-out plan over a fake feed store."""

from __future__ import annotations

import uuid

from pipelines.feed.distribution import Distributor
from tests.fakes import FakeFeedStore
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


async def test_failed_targets_alone_are_retried_then_reported() -> None:
    # GIVEN one broken feed among 10, in one batch
    store = FakeFeedStore()
    recipients = people(10)
    store.broken.add(recipients[4])
    plan = plan_fanout(POST, AUTHOR, recipients, batch_size=10)

    # WHEN distributed with 2 in-process retries
    report = await Distributor(store, parallelism=2, retries=2, retry_base_seconds=0).distribute(
        plan, owner="o", careful=False
    )

    # THEN the retries carried only the broken target, under the batch digest,
    # and it is reported as failed while the 9 others were served once
    digest = plan.batches[0].digest
    assert store.calls == [(digest, 10), (digest, 1), (digest, 1)]
    assert report.failed == [recipients[4]]
    assert report.written == 9


async def test_retry_that_succeeds_marks_the_whole_batch_done() -> None:
    # GIVEN a feed that fails once, then heals
    store = FakeFeedStore()
    recipients = people(5)
    store.broken.add(recipients[0])
    plan = plan_fanout(POST, AUTHOR, recipients, batch_size=5)
    original = store._push

    def heal_after_first(post_id, members, digest):  # type: ignore[no-untyped-def]
        result = original(post_id, members, digest)
        store.broken.clear()
        return result

    store._push = heal_after_first  # type: ignore[method-assign]

    # WHEN distributed
    report = await Distributor(store, parallelism=1, retry_base_seconds=0).distribute(
        plan, owner="o", careful=False
    )

    # THEN nothing failed and the batch digest is recorded as done
    assert report.failed == []
    assert report.written == 5
    assert (POST, plan.batches[0].digest) in store.done


async def test_empty_plan_touches_nothing() -> None:
    store = FakeFeedStore()
    plan = plan_fanout(POST, AUTHOR, [AUTHOR], batch_size=10)

    report = await Distributor(store, parallelism=4).distribute(plan, owner="o", careful=False)

    assert report.written == 0
    assert store.calls == []
