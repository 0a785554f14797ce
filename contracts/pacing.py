"""Paces for operator jobs (units per second): a fixed rate limit (DLQ redrive,
reconciliation), and an adaptive one that yields to live traffic (reconciliation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class RateLimiter:
    """Spaces `acquire(n)` calls so that on average at most `rate` units pass per second.

    No burst allowance beyond one call: a job restarted in a loop must not spike
    the database it is meant to spare. `rate=None` never waits.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = asyncio.Lock()

    async def acquire(self, units: int = 1) -> None:
        if self._rate is None or units <= 0:
            return
        async with self._lock:
            now = self._clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + units / self._rate
            wait = start - now
            if wait > 0:
                await self._sleep(wait)

    def observe(self, units: int, seconds: float) -> None:
        """A fixed rate learns nothing from how long work took (see `AdaptivePacer`)."""

    def retune(self, rate: float) -> None:
        """Pace the next calls at `rate` (the adaptive pace's lever)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate


class Pacer(Protocol):
    """What a job's batch loop needs of its pace: wait before work, report after it."""

    async def acquire(self, units: int = 1) -> None: ...

    def observe(self, units: int, seconds: float) -> None: ...


# How far behind the live pipeline is (messages waiting in its queue), or None
# when that cannot be read right now.
Backlog = Callable[[], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class AdaptiveOptions:
    """The adaptive pace's limits; docs/reconciliation.md explains the choices.

    `ceiling` is `--max-rate` (None: no ceiling). A job starts at `floor` units/s
    and never goes below it, so it always finishes.
    """

    ceiling: float | None = None
    floor: float = 50.0
    start: float | None = None
    interval: float = 1.0
    # The live queue may hold this many messages before the job slows down: a
    # pipeline keeping up holds about a receive batch per worker at any moment.
    backlog_limit: int = 100
    # The job's own work taking this much longer per unit than when it was
    # quiet means the database is contended: someone else is waiting too.
    latency_limit: float = 1.25
    increase: float = 1.1
    decrease: float = 0.5


@dataclass(slots=True)
class _Window:
    units: int = 0
    seconds: float = 0.0

    def per_unit(self) -> float | None:
        return self.seconds / self.units if self.units else None


class AdaptivePacer:
    """A rate that yields to live traffic: slower when users would feel the job.

    Every `interval` it looks at two signals and changes the rate (AIMD, as TCP
    shares a link):

    * the live pipeline's backlog (`backlog`, e.g. the SQS queue the job
      competes with): above `backlog_limit`, the workers are falling behind;
    * the job's own latency per unit against the quietest it has seen: above
      `latency_limit` times that, the database it shares is contended, which
      shows before a queue builds up.

    Either one halves the rate (never below `floor`); neither lets it grow by a
    tenth (never above `ceiling`): slow to take, quick to give back. `rate` is the
    current pace, for reports and the `socialpipe_reconcile_rate` gauge.
    """

    def __init__(
        self,
        options: AdaptiveOptions,
        backlog: Backlog | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: Callable[[float, str], None] | None = None,
    ) -> None:
        if options.floor <= 0:
            raise ValueError("the floor rate must be positive")
        if options.ceiling is not None and options.ceiling < options.floor:
            raise ValueError("the ceiling rate must not be below the floor")
        self._options = options
        self._backlog = backlog
        self._clock = clock
        self._limiter = RateLimiter(options.floor, clock=clock, sleep=sleep)
        self._on_change = on_change
        self.rate = self._bounded(options.start or options.floor)
        self._limiter.retune(self.rate)
        self._window = _Window()
        self._quiet: float | None = None
        self._next_look: float | None = None
        self._looking = asyncio.Lock()

    async def acquire(self, units: int = 1) -> None:
        now = self._clock()
        if self._next_look is None:
            self._next_look = now + self._options.interval
        elif now >= self._next_look and not self._looking.locked():
            async with self._looking:
                await self._adjust()
                self._next_look = self._clock() + self._options.interval
        await self._limiter.acquire(units)

    def observe(self, units: int, seconds: float) -> None:
        self._window.units += units
        self._window.seconds += seconds

    async def _adjust(self) -> None:
        per_unit, self._window = self._window.per_unit(), _Window()
        behind = await self._read_backlog()
        contended = False
        if per_unit is not None:
            if self._quiet is None or per_unit < self._quiet:
                self._quiet = per_unit
            contended = per_unit > self._options.latency_limit * self._quiet
            # Forget an old quiet moment slowly: the data may have grown since.
            self._quiet *= 1.02
        if behind is not None and behind > self._options.backlog_limit:
            self._set(self.rate * self._options.decrease, f"live backlog {behind}")
        elif contended:
            self._set(self.rate * self._options.decrease, "own latency up")
        else:
            self._set(self.rate * self._options.increase, "quiet")

    async def _read_backlog(self) -> int | None:
        if self._backlog is None:
            return None
        try:
            async with asyncio.timeout(self._options.interval):
                return await self._backlog()
        except Exception:
            return None  # a signal that cannot be read now is only a missing signal

    def _set(self, rate: float, why: str) -> None:
        rate = self._bounded(rate)
        if rate != self.rate:
            self.rate = rate
            self._limiter.retune(rate)
            if self._on_change is not None:
                self._on_change(rate, why)

    def _bounded(self, rate: float) -> float:
        ceiling = self._options.ceiling
        rate = max(self._options.floor, rate)
        return rate if ceiling is None else min(ceiling, rate)
