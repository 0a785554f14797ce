"""A rate limiter for operator jobs (units per second): DLQ redrive and reconciliation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


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
