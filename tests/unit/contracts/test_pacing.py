"""The operator jobs' rate limiter, on a fake clock."""

from __future__ import annotations

import pytest

from contracts.pacing import RateLimiter
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
