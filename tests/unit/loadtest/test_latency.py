"""Percentiles, the open-loop schedule and probe target choice."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from loadtest.latency import (
    OpenLoop,
    Tick,
    fanout_batches,
    percentile,
    probe_targets,
    summarize,
)


def test_percentiles_use_nearest_rank() -> None:
    # GIVEN latencies 1..100 in any order
    samples = [float(x) for x in range(100, 0, -1)]
    # WHEN summarised
    summary = summarize(samples)
    # THEN each percentile is the sample at its rank
    assert (summary.count, summary.p50, summary.p95, summary.p99, summary.max) == (
        100,
        50.0,
        95.0,
        99.0,
        100.0,
    )


def test_single_sample_is_every_percentile() -> None:
    summary = summarize([0.25])
    assert summary.p50 == summary.p95 == summary.p99 == summary.max == 0.25


def test_no_samples_give_no_percentiles() -> None:
    summary = summarize([])
    assert summary.count == 0
    assert summary.p95 is None


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        percentile([], 95)


def test_ticks_fall_due_on_a_fixed_schedule() -> None:
    # GIVEN 10 events a second for 2 seconds
    loop = OpenLoop(10, 2)
    # THEN the first is due at once, one more every 100 ms, capped at the total
    assert loop.total == 20
    assert [loop.due(t) for t in (-1, 0, 0.05, 0.1, 0.95, 5)] == [0, 1, 1, 2, 10, 20]


async def test_slow_consumer_does_not_slow_the_schedule() -> None:
    # GIVEN a fake clock that jumps a whole second per reading, as if the system stalled
    readings = iter(float(x) for x in range(1000))
    loop = OpenLoop(5, 2, clock=lambda: next(readings))
    sink: asyncio.Queue[Tick | None] = asyncio.Queue()
    # WHEN the loop runs
    released = await loop.run(sink)
    # THEN every due tick is released at once, with its scheduled time, then the end marker
    ticks = [sink.get_nowait() for _ in range(sink.qsize())]
    assert released == 10
    assert ticks[-1] is None
    scheduled = [t.scheduled_at for t in ticks if t is not None]
    assert scheduled == [pytest.approx(i / 5) for i in range(10)]


def test_small_fanout_is_watched_whole() -> None:
    # GIVEN a post to a dozen connections
    targets = [uuid.uuid4() for _ in range(12)]
    # WHEN probe targets are chosen
    picked = probe_targets(targets, batch_size=1000)
    # THEN every feed is watched
    assert picked == tuple(sorted(targets))


def test_large_fanout_watches_one_feed_per_batch_and_always_the_last() -> None:
    # GIVEN 2,500 connections fanned out in batches of 1,000
    targets = [uuid.uuid4() for _ in range(2500)]
    ordered = sorted(targets)
    # WHEN probe targets are chosen
    picked = probe_targets(targets, batch_size=1000)
    # THEN the last id of each full batch, the very first and the very last are watched
    assert picked == tuple(sorted({ordered[0], ordered[999], ordered[1999], ordered[-1]}))


def test_probe_targets_of_few_or_no_connections() -> None:
    one = uuid.uuid4()
    assert probe_targets([one, one]) == (one,)
    assert probe_targets([]) == ()


def test_fanout_batches_count_a_partial_last_batch() -> None:
    # the marker of a post holds one digest per batch: 2,500 targets in 1,000s make three
    assert [fanout_batches(n, 1000) for n in (1, 1000, 1001, 2000, 2500)] == [1, 1, 2, 2, 3]
