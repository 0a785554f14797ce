"""`socialpipe loadtest`: seed a graph, start (or attach to) workers, drive load, measure.

The run: migrate and reset a dedicated database, seed the social graph by COPY,
start the event bus (an SQS/SNS emulator, or a tansu Kafka broker) and its
topology, start N worker processes per pipeline (on Kafka: wait until their
consumer groups have settled), drive posts and profile updates on an open-loop
schedule for the warm-up plus the measured window, probe the read models until
every event is visible (or a drain deadline passes), then stop everything and
report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from api.auth import Tokens
from config.clients import is_cluster_url
from config.settings import Settings
from contracts.keys import fanout_marker_key
from loadtest.drivers import ApiPosts, ApiProfiles, AuthorPicker, Driver, GraphQL, PostScript, pump
from loadtest.harness import (
    Harness,
    LoadOptions,
    build_group,
    bus_endpoint,
    delete_keys,
    forget_users,
    prepare,
    redis_endpoint,
    run_settings,
    worker_ready_urls,
)
from loadtest.latency import OpenLoop, summarize
from loadtest.offload import DriverFailed, DriverProcesses, DriverSpec, Live, StreamOutcome
from loadtest.processes import ProcessGroup, running
from loadtest.report import LoadReport, backlog_label, can_draw, draw, stream_result

# Re-exported: the demo, benchmarks and tests import them from here.
__all__ = ["Harness", "LoadOptions", "Progress", "forget_users", "run_loadtest"]

# Requests each driver process keeps in flight: on a busy machine a round trip
# (UPDATE or PublishBatch) takes a second or more, and the schedule must not wait.
DRIVER_SENDERS = 16
Progress = Callable[[str], None]
# Runs after the load while everything is still up; returns lines for the report.
Epilogue = Callable[[Harness], Awaitable[list[str]]]


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


LiveView = Callable[[], tuple[Live, Live]]


def probe_live(h: Harness) -> tuple[Live, Live]:
    """Progress of the in-process probes (API mode)."""
    return tuple(  # type: ignore[return-value]
        Live(len(p.latencies), summarize(p.latencies[-500:]).p95)
        for p in (h.feed_probe, h.search_probe)
    )


async def watch_backlog(
    h: Harness, stop: asyncio.Event, progress: Progress, t0: float, live: LiveView
) -> None:
    """Sample the backlog once a second for the report and the live progress line."""
    label = backlog_label(h.bus.transport)
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a slow emulator must not end the run
            depths = await h.bus.backlog()
            for name, depth in depths.items():
                h.backlog_max[name] = max(h.backlog_max.get(name, 0), depth)
            progress(progress_line(*live(), depths, time.time() - t0, label))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def progress_line(
    posts: Live, profiles: Live, depths: dict[str, int], elapsed: float, label: str = "backlog"
) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}"

    backlog = " ".join(f"{k}={v}" for k, v in depths.items())
    return (
        f"t={elapsed:5.1f}s posts seen {posts.seen} (P95 recent {ms(posts.recent_p95)} ms)"
        f" | profiles seen {profiles.seen} (P95 recent {ms(profiles.recent_p95)} ms)"
        f" | {label} {backlog}"
    )


async def api_drivers(
    stack: AsyncExitStack, h: Harness, options: LoadOptions, api_url: str
) -> tuple[Driver, Driver]:
    """The post and profile drivers that go through the GraphQL API."""
    authors = AuthorPicker(h.graph, options.hub_post_share, options.seed)
    rng = random.Random(options.seed + 1)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=30)
    )
    stack.push_async_callback(session.close)
    tokens = Tokens(h.settings.api_token_secret, h.settings.api_token_ttl_seconds)
    api = GraphQL(session, api_url, {u: tokens.issue(u) for u in h.graph.users})
    h.api = api
    return (
        ApiPosts(api, h.graph, authors, h.feed_probe),
        ApiProfiles(api, h.pool, h.graph.users, h.search_probe, rng),
    )


@dataclass
class Driven:
    """The outcome of offering the load: both streams and the backlog when it ended."""

    t0: float
    posts: StreamOutcome
    profiles: StreamOutcome
    backlog: dict[str, int]


async def drive_through_api(
    stack: AsyncExitStack, h: Harness, options: LoadOptions, api_url: str, progress: Progress
) -> Driven:
    """Offer the load through the API from this process, probing here too."""
    posts, profiles = await api_drivers(stack, h, options, api_url)
    total = options.warmup + options.duration
    post_loop = OpenLoop(options.posts_per_minute / 60.0, total)
    profile_loop = OpenLoop(options.profile_updates_per_second, total)
    stop = asyncio.Event()
    t0 = time.time()
    h.load_at_start = loadavg()  # after seeding, which is CPU-heavy itself
    background = [
        asyncio.create_task(h.feed_probe.run(stop)),
        asyncio.create_task(h.search_probe.run(stop)),
        asyncio.create_task(watch_backlog(h, stop, progress, t0, lambda: probe_live(h))),
    ]
    try:
        await asyncio.gather(
            pump(posts, post_loop, options.senders), pump(profiles, profile_loop, options.senders)
        )
        backlog = await h.bus.backlog()
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
    await asyncio.gather(
        h.feed_probe.drain(options.drain_seconds), h.search_probe.drain(options.drain_seconds)
    )
    return Driven(
        t0,
        StreamOutcome.of(posts, post_loop.total, h.feed_probe, len(h.feed_probe.pending)),
        StreamOutcome.of(profiles, profile_loop.total, h.search_probe, len(h.search_probe.pending)),
        backlog,
    )


def driver_specs(h: Harness, options: LoadOptions) -> list[DriverSpec]:
    """One process for posts, one for profile updates (see `loadtest.offload`)."""
    total = options.warmup + options.duration
    post_rate = options.posts_per_minute / 60.0
    picker = AuthorPicker(h.graph, options.hub_post_share, options.seed)
    script = PostScript.plan(
        h.graph, picker, OpenLoop(post_rate, total).total, h.settings.fanout_batch_size
    )
    common: dict[str, Any] = {
        "settings": h.settings,
        "topic_arn": h.bus.topic_arn,
        "seconds": total,
        "senders": max(options.senders, DRIVER_SENDERS),
        "drain_seconds": options.drain_seconds,
    }
    return [
        # Lingers are counted in the measured latency (it runs from the scheduled
        # time), and are small against the SLOs: 20 ms of 500, 50 ms of 1,000.
        DriverSpec(
            kind="posts",
            rate_per_second=post_rate,
            batch=10,
            linger=0.02,
            # Polling every pending post's feeds costs Redis and the driver CPU the
            # workers need; 50 ms (100 ms for search) is a tenth of each SLO.
            probe_interval=0.05,
            script=script,
            **common,
        ),
        # An UPDATE of 100 rows costs about what one of 10 does: at 1,000 updates/s,
        # batches of 10 left the driver itself tens of seconds behind its schedule.
        DriverSpec(
            kind="profiles",
            rate_per_second=options.profile_updates_per_second,
            batch=100,
            linger=0.05,
            probe_interval=0.1,
            users=h.graph.users,
            seed=options.seed + 1,
            **common,
        ),
    ]


async def drive_offloaded(h: Harness, options: LoadOptions, progress: Progress) -> Driven:
    """Offer the load from driver processes; this process only watches the queues."""
    procs = DriverProcesses(await asyncio.to_thread(driver_specs, h, options))
    stop = asyncio.Event()
    watcher: asyncio.Task[None] | None = None
    try:
        t0 = await procs.start()
        h.load_at_start = loadavg()  # after seeding, which is CPU-heavy itself
        watcher = asyncio.create_task(
            watch_backlog(
                h, stop, progress, t0, lambda: (procs.live["posts"], procs.live["profiles"])
            )
        )
        await procs.loaded()
        backlog = await h.bus.backlog()
        outcomes = await procs.finished()
    finally:
        stop.set()
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        procs.stop()
    return Driven(t0, outcomes["posts"], outcomes["profiles"], backlog)


async def run_loadtest(
    base: Settings,
    options: LoadOptions,
    *,
    progress: Progress | None = None,
    epilogue: Epilogue | None = None,
) -> LoadReport:
    """Run one load scenario end to end and return its report (see the module docstring)."""
    say = progress or (lambda _line: None)
    started = time.monotonic()
    load_before = loadavg()
    with bus_endpoint(options) as bus, redis_endpoint(options) as redis:
        settings = run_settings(base, options, bus, redis)
        async with AsyncExitStack() as stack:
            h = await prepare(stack, settings, options)
            h.group = build_group(h, options)
            api_url: str | None = None
            if options.mode == "api":
                if h.group is None:
                    raise DriverFailed("API mode needs its own API process; it cannot --attach.")
                api_url = h.group.add_api()
                h.group.add_relay()
            async with _maybe_running(h.group, settings.shutdown_grace_seconds + 5):
                await h.bus.wait_joined(worker_ready_urls(h.group))
                if api_url is not None:
                    driven = await drive_through_api(stack, h, options, api_url, say)
                else:
                    driven = await drive_offloaded(h, options, say)
                dlq = await h.bus.dead_letters()
                notes = await epilogue(h) if epilogue else []
            await forget_markers(h, driven.posts.posts)
            report = assemble(h, options, driven, dlq, load_before, time.monotonic() - started)
    if options.picture and not can_draw():
        notes.append("no picture: matplotlib is not installed (the loadtest extra)")
    elif options.picture:
        path = options.out_dir / f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}.png"
        report = replace(report, picture=str(draw(report, path)))
    return replace(report, notes=tuple(notes))


@contextlib.asynccontextmanager
async def _maybe_running(group: ProcessGroup | None, grace: float) -> AsyncIterator[None]:
    if group is None:
        yield
        return
    async with running(group, grace):
        yield


async def forget_markers(h: Harness, posts: list[uuid.UUID]) -> None:
    """Fan-out markers of load-test posts would otherwise linger until their TTL."""
    await delete_keys(h.redis, [fanout_marker_key(p) for p in posts])


def _stream(
    name: str, visible: str, outcome: StreamOutcome, slo: float | None, common: dict[str, float]
) -> Any:
    return stream_result(
        name,
        visible,
        offered=outcome.offered,
        sent=outcome.stats.sent,
        samples=outcome.samples,
        not_visible=outcome.not_visible,
        trimmed=outcome.trimmed,
        errors=outcome.stats.errors,
        first_error=outcome.stats.first_error,
        slo_p95=slo,
        **common,
    )


def assemble(
    h: Harness,
    options: LoadOptions,
    driven: Driven,
    dlq: dict[str, int],
    load_before: str,
    elapsed: float,
) -> LoadReport:
    common = {"measure_from": driven.t0 + options.warmup, "window": options.duration}
    posts, profiles = driven.posts, driven.profiles
    streams = (
        _stream("posts", "all feeds", posts, options.slo_feed_p95, common),
        _stream("profile updates", "searchable", profiles, options.slo_search_p95, common),
    )
    return LoadReport(
        scenario={
            "users": len(h.graph.users),
            "connections": h.connections,
            "posts_per_minute": options.posts_per_minute,
            "profile_updates_per_second": options.profile_updates_per_second,
            "duration": options.duration,
            "warmup": options.warmup,
            "workers": "attached" if options.attach else options.workers,
            "mode": options.mode,
            "redis": "cluster" if is_cluster_url(h.settings.redis_url) else "one node",
            "database_reads": "replica" if h.settings.database_read_url else "primary",
            # How late the driver itself started the most delayed event (counted in latency).
            "driver_max_lag_seconds": {
                "posts": round(posts.stats.max_lag, 3),
                "profile updates": round(profiles.stats.max_lag, 3),
            },
            "driver_batches": {
                "posts": posts.stats.mean_ms(),
                "profile updates": profiles.stats.mean_ms(),
            },
            "feed_probes_per_post": round(posts.feeds_checked / max(1, posts.watched), 2),
        },
        streams=streams,
        backlog_at_end=driven.backlog,
        backlog_max=dict(h.backlog_max),
        dlq=dlq,
        worker_errors=h.group.error_lines() if h.group else {},
        machine={
            "cores": os.cpu_count(),
            "load_before": load_before,
            "load_at_start_of_load": h.load_at_start,
            "load_after": loadavg(),
            "python": sys.version.split()[0],
        },
        elapsed_seconds=elapsed,
        transport=options.transport,
    )
