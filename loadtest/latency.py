"""Open-loop load and end-to-end latency measurement (docs/architecture.md#performance-targets).

The scheduler releases event i at `start + i / rate` whatever the system under
test does, so a slow system shows up as latency rather than as a lower offered
load (no coordinated omission). Latency runs from the event's scheduled time,
which is also its `occurredAt`, to the moment the probe sees it in the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster

from config.clients import AnyRedis
from contracts.keys import fanout_marker_key, feed_key

Clock = Callable[[], float]


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """Seconds; `None` when there were no samples."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples (q in (0, 100])."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    rank = max(1, math.ceil(q / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def summarize(samples: Sequence[float]) -> LatencySummary:
    if not samples:
        return LatencySummary(0, None, None, None, None)
    ordered = sorted(samples)
    return LatencySummary(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


# --- open-loop scheduling ----------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Event number `index`, due at wall-clock `scheduled_at` (epoch seconds)."""

    index: int
    scheduled_at: float


class OpenLoop:
    """Releases `rate_per_second * duration` ticks on a fixed schedule into a queue.

    Consumers of the queue may fall behind; the schedule does not wait for them.
    """

    def __init__(
        self,
        rate_per_second: float,
        duration: float,
        *,
        clock: Clock = time.time,
    ) -> None:
        if rate_per_second <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        self.rate = rate_per_second
        self.total = max(1, round(rate_per_second * duration))
        self.clock = clock

    def due(self, elapsed: float) -> int:
        """How many ticks are due `elapsed` seconds after the start (tick 0 is due at once)."""
        if elapsed < 0:
            return 0
        return min(self.total, math.floor(elapsed * self.rate) + 1)

    async def run(self, sink: asyncio.Queue[Tick | None]) -> int:
        """Put every tick on `sink` when it is due, then `None`; returns the tick count."""
        start = self.clock()
        released = 0
        while released < self.total:
            due = self.due(self.clock() - start)
            for index in range(released, due):
                sink.put_nowait(Tick(index, start + index / self.rate))
            released = max(released, due)
            if released < self.total:
                next_at = start + released / self.rate
                await asyncio.sleep(max(0.0, next_at - self.clock()))
        sink.put_nowait(None)
        return released


# --- visibility probe ----------------------------------------------------------------------


async def poll_until(
    stop: asyncio.Event, poll: Callable[[], Awaitable[None]], interval: float
) -> None:
    """Call `poll` every `interval` until `stop` is set, resting at least twice as long as it ran.

    Under heavy load a round gets long (thousands of pending checks); resting
    twice as long as it took caps the probe at a third of a core, so measuring
    does not starve the workers it measures on a small machine. Resolution
    degrades instead (a sample is late by at most one interval plus a round).
    """
    while not stop.is_set():
        began = time.monotonic()
        await poll()
        rest = max(interval, 2 * (time.monotonic() - began))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rest)


SMALL_FANOUT = 16
# Fields of a fan-out marker that are not batch digests (see pipelines/feed/fanout.lua).
MARKER_BOOKKEEPING = frozenset({b"owner", b"shared"})
# How often the drain looks for posts trimmed out of a feed before a probe saw them.
SETTLE_INTERVAL = 1.0


def fanout_batches(targets: int, batch_size: int) -> int:
    """How many atomic fan-out batches (and so marker digests) `targets` recipients make."""
    return math.ceil(targets / batch_size)


def probe_targets(targets: Sequence[uuid.UUID], batch_size: int = 1000) -> tuple[uuid.UUID, ...]:
    """Which feeds to watch so that seeing the post in all of them means every target has it.

    Small fan-outs are watched whole. For larger ones, fan-out writes the
    recipients sorted and cut into `batch_size` batches, each one atomic Lua
    call: the last id of every batch (and so always the last batch) stands for
    its whole batch, and the first id guards against a shifted cut.
    """
    # Keyed by the 128-bit integer: UUID's own __hash__/__lt__ are Python methods, and this
    # runs once per post for up to 30k targets in the driver's process.
    by_int = {t.int: t for t in targets}
    ordered = [by_int[k] for k in sorted(by_int)]
    if len(ordered) <= SMALL_FANOUT:
        return tuple(ordered)
    picked = {ordered[0], ordered[-1]}
    picked.update(ordered[end - 1] for end in range(batch_size, len(ordered) + 1, batch_size))
    return tuple(sorted(picked))


@dataclass
class _Pending:
    post_id: str
    occurred_at: float
    feeds: list[str]
    # Fan-out batches the post's targets make; None when the watcher did not say.
    batches: int | None = None


class FeedProbe:
    """Polls the feeds of each post's probe targets until the post id shows up.

    One task polls everything pending in a single pipelined round per interval,
    so probing costs one Redis round trip per interval, not one per post.

    A feed keeps only its newest `feed_max_length` posts, so under overload a
    post can be pushed and trimmed away again before a late probe looks: its
    latency is unknown, but it was not lost. `settle_trimmed` tells those apart
    (counted in `trimmed`) from posts that never became visible.
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        interval: float = 0.01,
        clock: Clock = time.time,
        batch_size: int = 1000,
        feed_max_length: int | None = None,
    ) -> None:
        self.redis = redis
        self.interval = interval
        self.clock = clock
        self.batch_size = batch_size
        # The workers' FEED_MAX_LENGTH; unknown (None), no post counts as trimmed.
        self.feed_max_length = feed_max_length
        self.pending: dict[str, _Pending] = {}
        self.latencies: list[float] = []
        # (occurredAt, latency) pairs, in the order they became visible.
        self.samples: list[tuple[float, float]] = []
        self.watched = 0
        self.feeds_checked = 0
        # Every post offered, visible or not (their fan-out markers are cleaned up after a run).
        self.posts: list[uuid.UUID] = []
        # Posts pushed into a watched feed and trimmed out of it before a probe saw them.
        self.trimmed = 0

    def watch(self, post_id: uuid.UUID, occurred_at: float, targets: Sequence[uuid.UUID]) -> None:
        """Start watching a post; a post with no targets has nothing to become visible."""
        feeds = [feed_key(t) for t in probe_targets(targets, self.batch_size)]
        batches = fanout_batches(len(set(targets)), self.batch_size)
        self.watch_feeds(post_id, occurred_at, feeds, batches=batches)

    def watch_feeds(
        self,
        post_id: uuid.UUID,
        occurred_at: float,
        feeds: Sequence[str],
        *,
        batches: int | None = None,
    ) -> None:
        """Start watching a post in feeds already chosen by `probe_targets`.

        `batches` is how many fan-out batches its targets make (`fanout_batches`);
        without it the post can never be shown trimmed, only seen or missed.
        """
        self.posts.append(post_id)
        if not feeds:
            return
        self.watched += 1
        self.feeds_checked += len(feeds)
        self.pending[str(post_id)] = _Pending(str(post_id), occurred_at, list(feeds), batches)

    async def poll_once(self) -> None:
        """One round: record every post now visible in all of its watched feeds.

        A post whose batch count is known is looked for in its feeds only once
        its fan-out marker lists every batch as done (one HKEYS of a small hash):
        LPOS of a post a feed does not hold yet scans the whole feed, and under
        a backlog those scans competed with the fan-out itself for Redis.
        """
        if not self.pending:
            return
        waiting = [p for p in self.pending.values() if p.batches is not None]
        done = {p.post_id for p in await self._fanned_out(waiting)}
        due = [p for p in self.pending.values() if p.batches is None or p.post_id in done]
        checks = [(p, feed) for p in due for feed in p.feeds]
        if not checks:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for pending, feed in checks:
                pipe.lpos(feed, pending.post_id)
            found = await pipe.execute()
        now = self.clock()
        for (pending, feed), position in zip(checks, found, strict=True):
            if position is not None and feed in pending.feeds:
                pending.feeds.remove(feed)
        for post_id in [p.post_id for p in due if not p.feeds]:
            seen = self.pending.pop(post_id)
            self.latencies.append(now - seen.occurred_at)
            self.samples.append((seen.occurred_at, now - seen.occurred_at))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set."""
        await poll_until(stop, self.poll_once, self.interval)

    async def drain(self, deadline_seconds: float) -> int:
        """Keep polling until nothing is pending or the deadline passes; returns posts missed.

        Once a second, posts trimmed before they were seen stop being waited for
        (see `settle_trimmed`); what is still pending at the deadline was never
        visible.
        """
        end = time.monotonic() + deadline_seconds
        settle_at = 0.0
        while self.pending and time.monotonic() < end:
            await self.poll_once()
            if time.monotonic() >= settle_at:
                await self.settle_trimmed()
                settle_at = time.monotonic() + SETTLE_INTERVAL
            await asyncio.sleep(self.interval)
        return len(self.pending)

    async def settle_trimmed(self) -> int:
        """Stop waiting for posts provably trimmed before seen; returns how many there were.

        The rule: the post's fan-out marker holds a digest for every batch its
        targets make, and each watched feed still missing it is full
        (LLEN >= FEED_MAX_LENGTH). A digest is written by the same atomic Lua
        call that pushes the post into every feed of its batch, so a complete
        marker proves the post was pushed into each watched feed; absent now,
        it can only have been trimmed off the tail, which happens only to a full
        feed. A post missing from a feed that is not full, or whose fan-out is
        not complete, stays pending: if the drain ends so, it never became
        visible. Comparing the post with the oldest kept entry instead (by
        `created_at`) would not do: fan-out pushes in the order workers process
        events, not in creation order, and a post that was never pushed leaves
        the same feed behind as one that was trimmed. This assumes the workers
        cut batches with the probe's `batch_size` (FANOUT_BATCH_SIZE), as
        `probe_targets` does.
        """
        if self.feed_max_length is None:
            return 0
        complete = await self._fanned_out([p for p in self.pending.values() if p.batches])
        trimmed = await self._gone_from_full_feeds(complete, self.feed_max_length)
        for post_id in trimmed:
            del self.pending[post_id]
        self.trimmed += len(trimmed)
        return len(trimmed)

    async def _gone_from_full_feeds(self, posts: list[_Pending], max_length: int) -> list[str]:
        """Posts absent from every watched feed they still miss, each of them full.

        One node: one MULTI, so each feed's presence and length are read at the
        same instant. A cluster cannot run a MULTI over feeds of several slots, so
        there each feed's length is read before its LPOS in a plain pipeline (the
        commands of one key run in order on its node): a feed that was full stays
        full (the workers push and trim at the cap), so full-then-absent proves the
        same as full-and-absent.
        """
        if not posts:
            return []
        checks = [(p, feed) for p in posts for feed in p.feeds]
        async with self.redis.pipeline(
            transaction=not isinstance(self.redis, RedisCluster)
        ) as pipe:
            for pending, feed in checks:
                pipe.llen(feed)
                pipe.lpos(feed, pending.post_id)
            replies = await pipe.execute()
        gone: dict[str, bool] = {}
        for (pending, _feed), length, position in zip(
            checks, replies[::2], replies[1::2], strict=True
        ):
            trimmed_here = position is None and length >= max_length
            gone[pending.post_id] = gone.get(pending.post_id, True) and trimmed_here
        return [post_id for post_id, all_gone in gone.items() if all_gone]

    async def _fanned_out(self, candidates: list[_Pending]) -> list[_Pending]:
        """The candidates whose fan-out marker says every batch is done."""
        if not candidates:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for pending in candidates:
                pipe.hkeys(fanout_marker_key(pending.post_id))
            fields = await pipe.execute()
        return [
            p
            for p, names in zip(candidates, fields, strict=True)
            if p.batches is not None and len(set(names) - MARKER_BOOKKEEPING) >= p.batches
        ]
