"""Pausing a worker while a dependency is down, instead of dead-lettering its messages.

A handler names the services it cannot work without, each with a cheap probe
(`EventHandler.dependencies`). The gate is closed while any of them is known
to be down: the transport stops taking messages (so no receive count is spent
on an outage) and readiness answers false. It learns of an outage two ways: a
handler's failure classified as one (`Retry.outage`), or its own periodic
probe. While closed it probes the dependencies that are down with a growing
pause and opens by itself once every one answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Final

import structlog

from contracts.metrics import DEPENDENCY_UP
from contracts.outcomes import Probe

PROBE_TIMEOUT: Final = 2.0
# While up: how often the watcher probes, so readiness turns false even when idle.
WATCH_INTERVAL: Final = 5.0
RECOVERY_PAUSE: Final = (0.2, 2.0)
# An outage a failure reported for a dependency the handler did not name
# (a bare refused socket): every dependency is probed before work resumes.
ANY: Final = "*"

log = structlog.get_logger("consumers.gate")


class DependencyGate:
    """Open while every dependency answers; see the module docstring."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        queue: str,
        watch_interval: float = WATCH_INTERVAL,
        recovery_pause: tuple[float, float] = RECOVERY_PAUSE,
    ) -> None:
        self._probes = dict(probes)
        self._queue = queue
        self._watch_interval = watch_interval
        self._pause = recovery_pause
        self._down: dict[str, str] = {}
        self._open = asyncio.Event()
        self._open.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._recovering: asyncio.Task[None] | None = None
        for name in self._probes:
            DEPENDENCY_UP.labels(queue, name).set(1)

    @property
    def ready(self) -> bool:
        return not self._down

    @property
    def down(self) -> dict[str, str]:
        """The dependencies known to be down, with the reason each was marked."""
        return dict(self._down)

    def mark_down(self, dependency: str, reason: str) -> None:
        """Close the gate until `dependency` (or, if unnamed, every one) answers."""
        names = [dependency] if dependency in self._probes else [*self._probes] or [ANY]
        fresh = [n for n in names if n not in self._down]
        for name in names:
            self._down.setdefault(name, reason)
            if name in self._probes:
                DEPENDENCY_UP.labels(self._queue, name).set(0)
        if fresh:
            log.warning(
                "dependency down: pausing",
                queue=self._queue,
                dependency=", ".join(fresh),
                errorMessage=reason,
            )
        self._open.clear()
        if self._recovering is None or self._recovering.done():
            self._recovering = self._spawn(self._recover())

    async def wait_open(self) -> None:
        """Return at once while open; otherwise once every dependency answers again."""
        await self._open.wait()

    def start(self) -> None:
        """Start probing in the background while open (readiness without traffic)."""
        if self._probes:
            self._spawn(self._watch())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            if not self._down:
                for name, reason in (await self._failing(self._probes)).items():
                    self.mark_down(name, reason)

    async def _recover(self) -> None:
        low, high = self._pause
        pause = low
        while self._down:
            unnamed = ANY in self._down
            names = [*self._probes] if unnamed else [*self._down]
            failing = await self._failing({n: self._probes[n] for n in names if n in self._probes})
            for name in [n for n in self._down if n != ANY and n not in failing]:
                self._mark_up(name)
            if unnamed and not failing:
                self._down.pop(ANY, None)
            if self._down:
                await asyncio.sleep(pause)
                pause = min(high, pause * 2)
        self._open.set()

    def _mark_up(self, name: str) -> None:
        self._down.pop(name, None)
        DEPENDENCY_UP.labels(self._queue, name).set(1)
        log.info("dependency answers again: resuming", queue=self._queue, dependency=name)

    async def _failing(self, probes: Mapping[str, Probe]) -> dict[str, str]:
        """The probes that fail now, with why."""
        results = await asyncio.gather(*(_probe(p) for p in probes.values()))
        return {name: r for name, r in zip(probes, results, strict=True) if r is not None}


async def _probe(probe: Probe) -> str | None:
    """None when the dependency answers, else the reason it does not."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await probe()
    except Exception as exc:  # any failure of a probe means "down"
        return str(exc) or type(exc).__name__
    return None
