"""Reads from a streaming replica that may lag behind the primary.

A replica replays the primary's WAL a little later, so an event can name a
row (a post, a profile version) the replica does not have yet. Not finding it
there proves nothing: `ReadRouter.read` asks the replica, waits for it a
bounded time (polling with growing pauses), then asks the primary for what is
still missing or too old. Only what the primary lacks is really absent.

Every entity read is counted once in `socialpipe_replica_reads_total` by where
it was finally served: `replica`, `replica_after_wait` or `primary_fallback`.
Without a replica the router reads the primary and counts nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Final, Generic, TypeVar

import structlog

from contracts.metrics import REPLICA_READS

log = structlog.get_logger(__name__)

SERVED_BY_REPLICA: Final = "replica"
SERVED_AFTER_WAIT: Final = "replica_after_wait"
SERVED_BY_PRIMARY: Final = "primary_fallback"

# Streaming replicas usually trail by milliseconds; a second covers a busy
# moment without holding a message much longer than a normal fan-out takes.
DEFAULT_MAX_WAIT: Final = 1.0
DEFAULT_FIRST_PAUSE: Final = 0.05

S = TypeVar("S")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[S, list[K]], Awaitable[Mapping[K, V]]]
Fresh = Callable[[K, V | None], bool]


class ReadRouter(Generic[S]):
    """Chooses where a read goes: the replica when there is one, the primary for what it lacks.

    `S` is whatever reads (a pool, a repository); the router never looks inside it.
    """

    def __init__(
        self,
        primary: S,
        replica: S | None = None,
        *,
        pipeline: str,
        max_wait: float = DEFAULT_MAX_WAIT,
        first_pause: float = DEFAULT_FIRST_PAUSE,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self._pipeline = pipeline
        self._max_wait = max_wait
        self._first_pause = first_pause
        self._sleep = sleep
        self._clock = clock

    @property
    def reader(self) -> S:
        """Where reads that need no freshness check go (the replica when configured)."""
        return self.replica if self.replica is not None else self.primary

    async def read(
        self, keys: Sequence[K], fetch: Fetch[S, K, V], fresh: Fresh[K, V]
    ) -> dict[K, V]:
        """The value of each key, read where it is fresh enough; absent keys are absent
        on the primary.

        `fetch(source, keys)` returns the values it found; `fresh(key, value or None)`
        says whether a replica's answer can be trusted (present, new enough).
        """
        if self.replica is None:
            return dict(await fetch(self.primary, list(keys)))
        found, lagging = await self._from_replica(self.replica, list(keys), fetch, fresh)
        self._count(SERVED_BY_REPLICA, len(keys) - len(lagging))
        if lagging:
            waited, lagging = await self._wait_for(self.replica, lagging, found, fetch, fresh)
            if lagging:
                found.update(await fetch(self.primary, lagging))
                self._count(SERVED_BY_PRIMARY, len(lagging))
            log.info(
                "replica lagged",
                pipeline=self._pipeline,
                waitedSeconds=round(waited, 3),
                fromPrimary=len(lagging),
            )
        return found

    async def _from_replica(
        self, replica: S, keys: list[K], fetch: Fetch[S, K, V], fresh: Fresh[K, V]
    ) -> tuple[dict[K, V], list[K]]:
        answer = await fetch(replica, keys)
        found = {k: answer[k] for k in keys if k in answer and fresh(k, answer[k])}
        return found, [k for k in keys if k not in found]

    async def _wait_for(
        self,
        replica: S,
        lagging: list[K],
        found: dict[K, V],
        fetch: Fetch[S, K, V],
        fresh: Fresh[K, V],
    ) -> tuple[float, list[K]]:
        """Poll the replica for `lagging` until it has them or the wait is spent."""
        started = self._clock()
        pause = self._first_pause
        while lagging:
            left = self._max_wait - (self._clock() - started)
            if left <= 0:
                break
            await self._sleep(min(pause, left))
            pause *= 2
            caught_up, lagging = await self._from_replica(replica, lagging, fetch, fresh)
            found.update(caught_up)
            self._count(SERVED_AFTER_WAIT, len(caught_up))
        return self._clock() - started, lagging

    def _count(self, outcome: str, n: int) -> None:
        if n:
            REPLICA_READS.labels(pipeline=self._pipeline, outcome=outcome).inc(n)
            log.debug("replica read", pipeline=self._pipeline, outcome=outcome, entities=n)
