"""The driver pump: open-loop ticks cut into batches for many senders."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from loadtest.drivers import DriverStats, pump
from loadtest.latency import OpenLoop, Tick


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.stats = DriverStats()
        self.batches: list[list[int]] = []
        self.delay = delay

    async def send(self, ticks: Sequence[Tick]) -> None:
        self.batches.append([t.index for t in ticks])
        await asyncio.sleep(self.delay)
        self.stats.sent += len(ticks)


async def test_many_senders_still_send_full_batches_within_the_linger() -> None:
    # GIVEN 400 ticks/s for 0.5 s, 8 idle senders, batches of 10 lingering up to 50 ms
    driver = Recorder()
    # WHEN the schedule is pumped
    await pump(driver, OpenLoop(400, 0.5), senders=8, batch=10, linger=0.05)
    # THEN every tick went out exactly once, in batches of at most 10 that are mostly full
    sent = sorted(i for b in driver.batches for i in b)
    assert sent == list(range(200))
    assert all(len(b) <= 10 for b in driver.batches)
    assert len(driver.batches) <= 30
    # AND no batch waited much longer than its linger
    assert driver.stats.max_lag < 0.5


async def test_a_slow_driver_is_served_by_concurrent_senders() -> None:
    # GIVEN sends that take 200 ms, 100 ticks/s for 1 s, 8 senders, batches of 5
    driver = Recorder(delay=0.2)
    # WHEN the schedule is pumped
    await pump(driver, OpenLoop(100, 1.0), senders=8, batch=5, linger=0.01)
    # THEN all 100 went out and the driver never fell a second behind its schedule
    assert driver.stats.sent == 100
    assert driver.stats.max_lag < 0.5
