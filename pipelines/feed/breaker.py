"""A small circuit breaker: failure rate over a sliding time window.

Closed: calls pass; each is bounded by a timeout (a timeout is a failure).
Once at least `min_calls` calls fell in the window and the failure rate
reached `failure_rate`, the breaker opens: calls are refused at once for
`open_seconds`. Then it is half-open: one trial call is let through; its
success closes the breaker, its failure opens it again.

The clock is injected so tests can move time without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TypeVar

from contracts.metrics import BREAKER_STATE

T = TypeVar("T")
Clock = Callable[[], float]


class BreakerState(IntEnum):
    """Exported as the `socialpipe_circuit_breaker_state` gauge value."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpenError(Exception):
    """The breaker refused the call without running it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Circuit breaker {name!r} is open.")
        self.name = name


class CircuitBreaker:
    """Guards calls to one dependency (see module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        failure_rate: float,
        window_seconds: float,
        min_calls: int,
        call_timeout: float,
        open_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self._failure_rate = failure_rate
        self._window = window_seconds
        self._min_calls = min_calls
        self._timeout = call_timeout
        self._open_seconds = open_seconds
        self._clock = clock
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._export()

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._open_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows_call(self) -> bool:
        """Whether a call made now would run (closed, or half-open with no trial running)."""
        state = self.state
        self._export()
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._trial_running
        )

    def seconds_until_half_open(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._open_seconds - self._clock())

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn()` under the breaker; raises `CircuitOpenError` without running it
        when open, `TimeoutError` when it outlives the call timeout."""
        trial = self._admit()
        try:
            async with asyncio.timeout(self._timeout):
                result = await fn()
        except asyncio.CancelledError:
            if trial:
                self._trial_running = False
            raise
        except Exception:
            self._record(ok=False, trial=trial)
            raise
        self._record(ok=True, trial=trial)
        return result

    async def wait_until_callable(self, *, poll: float = 0.25) -> None:
        """Return once a call would be let through (at the latest when half-open)."""
        while not self.allows_call():
            remaining = self.seconds_until_half_open()
            await asyncio.sleep(min(poll, remaining) if remaining > 0 else poll)

    def _admit(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            self._export()
            return True
        raise CircuitOpenError(self.name)

    def _record(self, *, ok: bool, trial: bool) -> None:
        now = self._clock()
        if trial:
            self._trial_running = False
            self._reset_window()
            self._opened_at = None if ok else now
        elif self._opened_at is None:
            self._calls.append((now, ok))
            self._failures += not ok
            self._evict(now)
            if self._should_open():
                self._opened_at = now
                self._reset_window()
        self._export()

    def _reset_window(self) -> None:
        self._calls.clear()
        self._failures = 0

    def _evict(self, now: float) -> None:
        while self._calls and now - self._calls[0][0] > self._window:
            _, ok = self._calls.popleft()
            self._failures -= not ok

    def _should_open(self) -> bool:
        total = len(self._calls)
        return total >= self._min_calls and self._failures / total >= self._failure_rate

    def _export(self) -> None:
        BREAKER_STATE.labels(breaker=self.name).set(int(self.state))
