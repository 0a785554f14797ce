"""Driver processes: posts and profile updates are offered, and probed, outside the runner.

One Python process could not offer 20x the seed's load and watch it too: signing
SNS requests, building rows and polling Redis all compete for one interpreter,
and the schedule slipped by tens of seconds. So each stream gets its own
process (spawned, so nothing of the parent's event loop or sockets is shared)
with its own database pool, event sink (SNS client or Kafka producer), Redis
client and probe. The parent
keeps the graph: it hands the post process a `PostScript` (authors in tick
order and the feeds that prove each visible), so the child needs no graph.

Protocol over two queues: the child says `ready`, waits for the shared start
time, sends `progress` once a second, and finally `done` with a `StreamOutcome`
(or `failed` with a sentence).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import random
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from config.clients import open_any_redis
from config.settings import Settings
from loadtest.drivers import DirectPosts, DirectProfiles, Driver, DriverStats, PostScript, pump
from loadtest.latency import FeedProbe, OpenLoop, summarize
from loadtest.search_probe import PostgresVersions, SearchProbe
from loadtest.sinks import EventSink, open_sink
from store.db import create_pool

Kind = Literal["posts", "profiles"]
# A child that sends nothing for this long is reported as hung.
SILENCE_LIMIT = 60.0


@dataclass(frozen=True)
class DriverSpec:
    """Everything a driver process needs; picklable."""

    kind: Kind
    settings: Settings
    # The SNS topic to publish to; None on Kafka (the settings name the events topic).
    topic_arn: str | None
    rate_per_second: float
    seconds: float
    senders: int
    batch: int
    drain_seconds: float
    linger: float = 0.0
    probe_interval: float = 0.02
    script: PostScript | None = None
    users: tuple[uuid.UUID, ...] = ()
    seed: int = 0


@dataclass
class StreamOutcome:
    """What one stream offered and saw: the runner's report is built from these."""

    offered: int = 0
    stats: DriverStats = field(default_factory=DriverStats)
    samples: list[tuple[float, float]] = field(default_factory=list)
    not_visible: int = 0
    # Posts pushed into a watched feed and trimmed off it before the probe saw them.
    trimmed: int = 0
    watched: int = 0
    feeds_checked: int = 0
    posts: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    def of(
        cls, driver: Driver, offered: int, probe: FeedProbe | SearchProbe, missed: int
    ) -> StreamOutcome:
        """The outcome of a stream driven by `driver` and watched by `probe`."""
        return cls(
            offered=offered,
            stats=driver.stats,
            samples=probe.samples,
            not_visible=missed,
            trimmed=getattr(probe, "trimmed", 0),
            watched=probe.watched,
            feeds_checked=getattr(probe, "feeds_checked", 0),
            posts=list(getattr(probe, "posts", [])),
        )


@dataclass
class Live:
    """The latest progress a child reported."""

    seen: int = 0
    recent_p95: float | None = None


class DriverFailed(Exception):
    """A driver process failed; the message is one sentence naming it."""


# --- the child ------------------------------------------------------------------------------


def child_main(spec: DriverSpec, inbox: Any, outbox: Any) -> None:
    """Entry point of a driver process."""
    try:
        outcome = asyncio.run(_child(spec, inbox, outbox))
    except BaseException as exc:  # reported to the parent, which ends the run with a sentence
        outbox.put(("failed", spec.kind, f"{type(exc).__name__}: {exc}"[:400]))
        return
    outbox.put(("done", spec.kind, outcome))


async def _child(spec: DriverSpec, inbox: Any, outbox: Any) -> StreamOutcome:
    settings = spec.settings
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, min_size=2, max_size=spec.senders + 2)
        stack.push_async_callback(pool.close)
        sink = await open_sink(
            stack, settings, topic_arn=spec.topic_arn, connections=4 * spec.senders
        )
        driver, probe = await _driver(stack, spec, pool, sink)
        outbox.put(("ready", spec.kind, None))
        start_at = await asyncio.to_thread(inbox.get)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        loop = OpenLoop(spec.rate_per_second, spec.seconds)
        stop = asyncio.Event()
        background = [
            asyncio.create_task(probe.run(stop)),
            asyncio.create_task(_report_progress(spec.kind, probe, outbox, stop)),
        ]
        try:
            await pump(driver, loop, spec.senders, batch=spec.batch, linger=spec.linger)
        finally:
            stop.set()
            await asyncio.gather(*background, return_exceptions=True)
        outbox.put(("loaded", spec.kind, None))
        missed = await probe.drain(spec.drain_seconds)
        return StreamOutcome.of(driver, loop.total, probe, missed)


async def _driver(
    stack: AsyncExitStack, spec: DriverSpec, pool: Any, sink: EventSink
) -> tuple[Driver, FeedProbe | SearchProbe]:
    if spec.kind == "posts":
        assert spec.script is not None
        redis = await open_any_redis(stack, spec.settings, max_connections=4)
        feeds = FeedProbe(
            redis, interval=spec.probe_interval, feed_max_length=spec.settings.feed_max_length
        )
        return DirectPosts(pool, sink, spec.script, feeds), feeds
    search = SearchProbe(PostgresVersions(pool), interval=spec.probe_interval)
    rng = random.Random(spec.seed)
    return DirectProfiles(pool, sink, spec.users, search, rng), search


async def _report_progress(
    kind: Kind, probe: FeedProbe | SearchProbe, outbox: Any, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        outbox.put(
            ("progress", kind, Live(len(probe.latencies), summarize(probe.latencies[-500:]).p95))
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


# --- the parent -----------------------------------------------------------------------------


class DriverProcesses:
    """Starts one process per spec, releases them together, collects their outcomes."""

    def __init__(self, specs: list[DriverSpec]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.outbox: Any = ctx.Queue()
        self.inboxes: dict[Kind, Any] = {s.kind: ctx.Queue() for s in specs}
        self.procs = {
            s.kind: ctx.Process(
                target=child_main,
                args=(s, self.inboxes[s.kind], self.outbox),
                name=f"loadtest-{s.kind}",
                daemon=True,
            )
            for s in specs
        }
        self.live: dict[Kind, Live] = {s.kind: Live() for s in specs}
        self.outcomes: dict[Kind, StreamOutcome] = {}

    async def start(self) -> float:
        """Start the children, wait until all are ready, release them; returns the start time."""
        for proc in self.procs.values():
            proc.start()
        await self._until(lambda msgs: sum(1 for m in msgs if m[0] == "ready") == len(self.procs))
        start_at = time.time() + 0.2
        for inbox in self.inboxes.values():
            inbox.put(start_at)
        return start_at

    async def loaded(self) -> None:
        """Wait until every child has offered its whole schedule."""
        await self._until(lambda msgs: sum(1 for m in msgs if m[0] == "loaded") == len(self.procs))

    async def finished(self) -> dict[Kind, StreamOutcome]:
        """Wait for every child's outcome."""
        await self._until(lambda _msgs: len(self.outcomes) == len(self.procs))
        for proc in self.procs.values():
            await asyncio.to_thread(proc.join, 10)
        return self.outcomes

    def stop(self) -> None:
        """Terminate children still running (after a failure or Ctrl-C)."""
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs.values():
            proc.join(5)

    async def _until(self, done: Callable[[list[tuple[str, Kind, Any]]], bool]) -> None:
        seen: list[tuple[str, Kind, Any]] = []
        last = time.monotonic()
        while not done(seen):
            try:
                msg = await asyncio.to_thread(self.outbox.get, True, 0.5)
            except queue.Empty:
                self._check_alive(time.monotonic() - last)
                continue
            last = time.monotonic()
            seen.append(msg)
            self._absorb(msg)

    def _absorb(self, msg: tuple[str, Kind, Any]) -> None:
        what, kind, body = msg
        if what == "progress":
            self.live[kind] = body
        elif what == "done":
            self.outcomes[kind] = body
        elif what == "failed":
            raise DriverFailed(f"The {kind} driver process failed: {body}.")

    def _check_alive(self, silent_for: float) -> None:
        for kind, proc in self.procs.items():
            if not proc.is_alive() and kind not in self.outcomes:
                raise DriverFailed(f"The {kind} driver process exited with code {proc.exitcode}.")
        if silent_for > SILENCE_LIMIT:
            raise DriverFailed(f"The driver processes sent nothing for {silent_for:.0f} s.")
