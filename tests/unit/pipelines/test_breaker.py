"""The circuit breaker, on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from contracts.metrics import BREAKER_STATE
from pipelines.feed.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from tests.fakes import FakeClock


def make(clock: FakeClock, *, min_calls: int = 4, timeout: float = 1.0) -> CircuitBreaker:
    return CircuitBreaker(
        "unit",
        failure_rate=0.5,
        window_seconds=60.0,
        min_calls=min_calls,
        call_timeout=timeout,
        open_seconds=30.0,
        clock=clock,
    )


def state(breaker: CircuitBreaker) -> BreakerState:
    # A call, not the property, so the type checker does not narrow across awaits.
    return breaker.state


async def ok() -> str:
    return "ok"


async def boom() -> str:
    raise ConnectionError("down")


async def run(breaker: CircuitBreaker, *fns: Callable[[], Awaitable[str]]) -> None:
    for fn in fns:
        with contextlib.suppress(ConnectionError):
            await breaker.call(fn)


async def test_opens_at_half_failures_once_min_calls_reached() -> None:
    # GIVEN a closed breaker needing 4 calls
    clock = FakeClock()
    breaker = make(clock)

    # WHEN 1 success and 2 failures happen (3 calls, under the minimum)
    await run(breaker, ok, boom, boom)
    # THEN it stays closed
    assert state(breaker) is BreakerState.CLOSED

    # WHEN a 4th call succeeds: 2 of 4 failed = 50 %
    await run(breaker, ok)
    # THEN it opens, refuses calls without running them, and exports the state
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    assert BREAKER_STATE.labels(breaker="unit")._value.get() == 2


async def test_stays_closed_below_failure_rate() -> None:
    clock = FakeClock()
    breaker = make(clock)

    await run(breaker, ok, ok, boom, ok, ok, boom, ok)

    assert state(breaker) is BreakerState.CLOSED


async def test_failures_older_than_window_do_not_count() -> None:
    # GIVEN 3 failures a while ago
    clock = FakeClock()
    breaker = make(clock)
    await run(breaker, boom, boom, boom)

    # WHEN the window slides past them and one more failure happens
    clock.advance(61)
    await run(breaker, boom)

    # THEN only 1 call is in the window: under the minimum, still closed
    assert state(breaker) is BreakerState.CLOSED


async def test_timeout_counts_as_failure() -> None:
    # GIVEN a breaker opening on a single failed call
    breaker = make(FakeClock(), min_calls=1, timeout=0.01)

    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    # WHEN a call outlives the timeout
    with pytest.raises(TimeoutError):
        await breaker.call(slow)

    # THEN it counted as a failure
    assert state(breaker) is BreakerState.OPEN


async def test_half_open_trial_success_closes() -> None:
    clock = FakeClock()
    breaker = make(clock, min_calls=1)
    await run(breaker, boom)

    # WHEN the open period passes
    clock.advance(30)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert await breaker.call(ok) == "ok"

    # THEN the trial closed it
    assert state(breaker) is BreakerState.CLOSED


async def test_half_open_trial_failure_reopens_for_a_full_period() -> None:
    clock = FakeClock()
    breaker = make(clock, min_calls=1)
    await run(breaker, boom)
    clock.advance(30)

    await run(breaker, boom)

    assert state(breaker) is BreakerState.OPEN
    clock.advance(29)
    assert state(breaker) is BreakerState.OPEN
    clock.advance(1)
    assert state(breaker) is BreakerState.HALF_OPEN


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    # GIVEN a half-open breaker with a trial call in flight
    clock = FakeClock()
    breaker = make(clock, min_calls=1)
    await run(breaker, boom)
    clock.advance(30)
    gate = asyncio.Event()

    async def trial() -> str:
        await gate.wait()
        return "trial"

    task = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)

    # WHEN a second call arrives THEN it is refused
    assert not breaker.allows_call()
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    gate.set()
    assert await task == "trial"
    assert state(breaker) is BreakerState.CLOSED


async def test_wait_until_callable_returns_when_half_open() -> None:
    # GIVEN an open breaker
    clock = FakeClock()
    breaker = make(clock, min_calls=1)
    await run(breaker, boom)
    waiter = asyncio.create_task(breaker.wait_until_callable(poll=0.005))

    # WHEN time has not moved THEN the waiter is still blocked
    await asyncio.sleep(0.03)
    assert not waiter.done()

    # WHEN the open period passes THEN it returns
    clock.advance(30)
    await asyncio.wait_for(waiter, timeout=2)
    assert state(breaker) is BreakerState.HALF_OPEN
