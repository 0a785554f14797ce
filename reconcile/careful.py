"""The careful-until mark: tells the live feed workers that feeds are being rewritten.

A feed rewrite replaces a whole list from a snapshot. A PostCreated delivered
for the first time during (or just after) a rewrite takes the fast fan-out
path, which pushes without looking for the post first; if the rewrite already
wrote that post into some feeds (it is an expected post), the fast path would
add it a second time. So while feeds are rewritten the mark holds a UNIX time
(seconds, as a float in a string) until which workers take the careful,
de-duplicating path for every post.

The mark only ever moves forward under other writers: raising keeps a later
value, and the end of a run lowers it only when it still holds this run's own
value (another run that raised it past ours keeps its protection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from redis.exceptions import RedisError

from reconcile.redis_client import AnyRedis

log = structlog.get_logger("reconcile.careful")

# Covers a run, then is refreshed long before it could lapse.
HORIZON_SECONDS: Final = 3600.0
# After the last rewrite, events already in flight still reach the workers for a while.
LINGER_SECONDS: Final = 60.0
REFRESH_SECONDS: Final = 30.0

_RAISE: Final = """
local raw = redis.call('GET', KEYS[1])
local current = tonumber(raw or '')
if current == nil or tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return raw
"""

_RELEASE: Final = """
local raw = redis.call('GET', KEYS[1])
local current = tonumber(raw or '')
if raw == ARGV[1] or current == nil or tonumber(ARGV[2]) > current then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return raw
"""


def stamp(seconds: float) -> str:
    """The stored form of a UNIX time: seconds with milliseconds, as text."""
    return f"{seconds:.3f}"


class CarefulUntil:
    """Raises, refreshes and releases the careful-until mark around a feed rewrite run."""

    def __init__(
        self,
        client: AnyRedis,
        key: str,
        *,
        horizon: float = HORIZON_SECONDS,
        linger: float = LINGER_SECONDS,
        refresh_every: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._horizon = horizon
        self._linger = linger
        self._refresh_every = refresh_every
        self._clock = clock
        self._raise: Any = client.register_script(_RAISE)
        self._release: Any = client.register_script(_RELEASE)

    async def raise_to(self, until: float) -> str:
        """Set the mark to `until` unless it already holds a later time; returns the mark."""
        return _text(await self._raise(keys=[self._key], args=[stamp(until)]))

    async def release(self, mine: str, until: float) -> str:
        """Set the mark to `until`, lowering it only from this run's own value `mine`."""
        return _text(await self._release(keys=[self._key], args=[mine, stamp(until)]))

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the mark `horizon` ahead while the body runs, then `linger` past its end."""
        hold = _Hold(stamp(self._clock() + self._horizon))
        await self.raise_to(float(hold.mine))
        refresher = asyncio.create_task(self._refresh(hold))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await refresher
            await self._end(hold.mine)

    async def _refresh(self, hold: _Hold) -> None:
        while True:
            await asyncio.sleep(self._refresh_every)
            # Recorded before the write: if cancelled mid-way, the end compares with
            # the newest value this run may have written.
            hold.mine = stamp(self._clock() + self._horizon)
            await self.raise_to(float(hold.mine))

    async def _end(self, mine: str) -> None:
        try:
            await self.release(mine, self._clock() + self._linger)
        except RedisError as exc:
            # The mark then stays up to `horizon` ahead: workers are careful longer,
            # which costs some speed and never a duplicate.
            log.warning("careful_until_release_failed", errorMessage=str(exc))


@dataclass(slots=True)
class _Hold:
    """The value this run wrote last: the only one its end may lower."""

    mine: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
