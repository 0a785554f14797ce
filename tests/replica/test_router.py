"""`ReadRouter` with fakes: where each read is served, how long it waits, what it counts."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import REGISTRY

from store.replica import (
    SERVED_AFTER_WAIT,
    SERVED_BY_PRIMARY,
    SERVED_BY_REPLICA,
    ReadRouter,
)

PIPELINE = "router-test"


class FakeDb:
    """Rows by key; `catch_up_after` reads before the keys in `late` appear (a lagging replica)."""

    def __init__(self, rows: Mapping[str, int], *, late: Mapping[str, int] | None = None) -> None:
        self.rows = dict(rows)
        self.late = dict(late or {})
        self.reads: list[list[str]] = []
        self.catch_up_after: int | None = None

    async def fetch(self, keys: list[str]) -> dict[str, int]:
        self.reads.append(keys)
        if self.catch_up_after is not None and len(self.reads) > self.catch_up_after:
            self.rows.update(self.late)
        return {k: self.rows[k] for k in keys if k in self.rows}


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


async def fetch(db: FakeDb, keys: list[str]) -> dict[str, int]:
    return await db.fetch(keys)


def present(_key: str, value: int | None) -> bool:
    return value is not None


def counted(outcome: str) -> float:
    labels = {"pipeline": PIPELINE, "outcome": outcome}
    return REGISTRY.get_sample_value("socialpipe_replica_reads_total", labels) or 0.0


def snapshot() -> dict[str, float]:
    return {o: counted(o) for o in (SERVED_BY_REPLICA, SERVED_AFTER_WAIT, SERVED_BY_PRIMARY)}


def delta(before: dict[str, float]) -> dict[str, float]:
    return {o: counted(o) - n for o, n in before.items()}


def router(primary: FakeDb, replica: FakeDb | None, fake_time: FakeTime) -> ReadRouter[FakeDb]:
    return ReadRouter(
        primary,
        replica,
        pipeline=PIPELINE,
        max_wait=1.0,
        first_pause=0.05,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


async def test_without_a_replica_reads_the_primary_and_counts_nothing() -> None:
    primary, fake_time, before = FakeDb({"a": 1}), FakeTime(), snapshot()
    routed = router(primary, None, fake_time)
    assert await routed.read(["a", "b"], fetch, present) == {"a": 1}
    assert routed.reader is primary
    assert primary.reads == [["a", "b"]]
    assert delta(before) == dict.fromkeys(before, 0.0)


async def test_what_the_replica_has_is_served_by_it_without_waiting() -> None:
    primary, replica, fake_time, before = FakeDb({"a": 1}), FakeDb({"a": 1}), FakeTime(), snapshot()
    routed = router(primary, replica, fake_time)
    assert await routed.read(["a"], fetch, present) == {"a": 1}
    assert routed.reader is replica
    assert primary.reads == [] and fake_time.pauses == []
    assert delta(before)[SERVED_BY_REPLICA] == 1


async def test_a_replica_that_catches_up_serves_after_a_short_wait() -> None:
    primary = FakeDb({"a": 1, "b": 2})
    replica = FakeDb({"a": 1}, late={"b": 2})
    replica.catch_up_after = 2
    fake_time, before = FakeTime(), snapshot()
    found = await router(primary, replica, fake_time).read(["a", "b"], fetch, present)
    assert found == {"a": 1, "b": 2}
    assert replica.reads == [["a", "b"], ["b"], ["b"]]  # only the lagging key is polled
    assert fake_time.pauses == [0.05, 0.1]
    assert primary.reads == []
    assert delta(before) == {SERVED_BY_REPLICA: 1, SERVED_AFTER_WAIT: 1, SERVED_BY_PRIMARY: 0}


async def test_a_replica_that_stays_behind_costs_a_bounded_wait_then_the_primary() -> None:
    primary = FakeDb({"a": 1, "b": 2})
    replica = FakeDb({"a": 1})
    fake_time, before = FakeTime(), snapshot()
    found = await router(primary, replica, fake_time).read(["a", "b", "gone"], fetch, present)
    assert found == {"a": 1, "b": 2}  # "gone" is absent on the primary too
    assert sum(fake_time.pauses) == 1.0
    assert fake_time.pauses[-1] < fake_time.pauses[-2] * 2  # the last pause is cut to the bound
    assert primary.reads == [["b", "gone"]]
    assert delta(before) == {SERVED_BY_REPLICA: 1, SERVED_AFTER_WAIT: 0, SERVED_BY_PRIMARY: 2}


async def test_freshness_is_the_callers_rule_a_too_old_value_is_not_trusted() -> None:
    primary, replica, fake_time = FakeDb({"a": 7}), FakeDb({"a": 3}), FakeTime()

    def at_least_seven(_key: str, value: int | None) -> bool:
        return value is not None and value >= 7

    found = await router(primary, replica, fake_time).read(["a"], fetch, at_least_seven)
    assert found == {"a": 7}
    assert primary.reads == [["a"]]
