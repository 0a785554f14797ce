"""The operator jobs' rate limiter, on a fake clock."""

from __future__ import annotations

import pytest

from contracts.pacing import AdaptiveOptions, AdaptivePacer, RateLimiter
from tests.fakes import FakeClock


async def test_limiter_spaces_calls_to_the_rate() -> None:
    # GIVEN a limiter of 100 units/s on a clock that only moves when it sleeps
    clock = FakeClock(0.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    limiter = RateLimiter(100, clock=clock, sleep=sleep)
    # WHEN three batches of 50 pass
    for _ in range(3):
        await limiter.acquire(50)
    # THEN the first passes at once and each next one waits half a second
    assert slept == [0.5, 0.5]
    assert clock() == pytest.approx(1.0)


async def test_limiter_without_rate_never_waits() -> None:
    async def never(_: float) -> None:
        raise AssertionError("slept")

    limiter = RateLimiter(None, sleep=never)
    for _ in range(5):
        await limiter.acquire(1000)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


class Job:
    """An adaptive pace on a fake clock, driven the way `run_batches` drives it."""

    def __init__(self, options: AdaptiveOptions, backlog: list[int | None] | None = None) -> None:
        self.clock = FakeClock(0.0)
        self.backlogs = list(backlog or [])
        self.changes: list[tuple[float, str]] = []

        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        async def read_backlog() -> int | None:
            return self.backlogs.pop(0) if self.backlogs else 0

        self.pacer = AdaptivePacer(
            options,
            read_backlog if backlog is not None else None,
            clock=self.clock,
            sleep=sleep,
            on_change=lambda rate, why: self.changes.append((rate, why)),
        )

    async def batch(self, units: int, per_unit: float) -> None:
        await self.pacer.acquire(units)
        self.pacer.observe(units, units * per_unit)

    async def run_for(self, seconds: float, per_unit: float = 0.001, units: int = 10) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            await self.batch(units, per_unit)


async def test_a_quiet_system_lets_the_rate_climb_to_the_ceiling_and_no_further() -> None:
    # GIVEN an adaptive pace from 50/s up to at most 1,000/s, nothing else running
    job = Job(AdaptiveOptions(ceiling=1000, floor=50), backlog=[])
    # WHEN it runs for a minute with steady latency and an empty live queue
    await job.run_for(60)
    # THEN it grew step by step and settled at the ceiling
    assert job.pacer.rate == 1000
    rates = [rate for rate, _ in job.changes]
    assert rates == sorted(rates) and all(why == "quiet" for _, why in job.changes)


async def test_a_live_backlog_halves_the_rate_down_to_the_floor() -> None:
    # GIVEN a pace that reached its ceiling while the live queue was empty
    job = Job(AdaptiveOptions(ceiling=1000, floor=50), backlog=[0] * 60)
    await job.run_for(60)
    assert job.pacer.rate == 1000
    # WHEN the live queue holds more than the limit for several looks
    job.backlogs = [500] * 10
    await job.run_for(10)
    # THEN each look halved the rate, and it stopped at the floor
    halvings = [rate for rate, why in job.changes if why == "live backlog 500"]
    assert halvings[:3] == [500, 250, 125]
    assert job.pacer.rate == 50


async def test_its_own_latency_rising_slows_it_before_any_queue_builds() -> None:
    # GIVEN a pace that learnt its quiet latency (1 ms per unit), with no queue to read
    job = Job(AdaptiveOptions(ceiling=2000, floor=50))
    await job.run_for(20, per_unit=0.001)
    before = job.pacer.rate
    # WHEN its work starts taking three times as long (the database is contended)
    await job.run_for(3, per_unit=0.003)
    # THEN it slowed down for that reason
    assert job.pacer.rate < before
    assert any(why == "own latency up" for _, why in job.changes)


async def test_an_unreadable_backlog_is_a_missing_signal_not_a_failure() -> None:
    async def broken() -> int | None:
        raise ConnectionError("queue service down")

    clock = FakeClock(0.0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    pacer = AdaptivePacer(AdaptiveOptions(floor=10), broken, clock=clock, sleep=sleep)
    for _ in range(100):
        await pacer.acquire(5)
        pacer.observe(5, 0.005)
    assert pacer.rate > 10


def test_the_ceiling_may_not_be_below_the_floor() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        AdaptivePacer(AdaptiveOptions(ceiling=10, floor=50))
