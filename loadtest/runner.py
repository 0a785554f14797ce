"""`socialpipe loadtest`: seed a graph, start (or attach to) workers, drive load, measure.

The run: migrate and reset a dedicated database, seed the social graph by COPY,
start an SQS/SNS emulator and the topology, start N worker processes per
pipeline, drive posts and profile updates on an open-loop schedule for the
warm-up plus the measured window, probe the read models until every event is
visible (or a drain deadline passes), then stop everything and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from api.auth import Tokens
from config.clients import open_redis, open_sns, open_sqs
from config.settings import Settings
from consumers.topology import Topology, ensure_topology
from contracts.keys import connections_cache_key, fanout_marker_key, feed_key
from loadtest import emulator as emu
from loadtest.drivers import ApiPosts, ApiProfiles, AuthorPicker, Driver, GraphQL, PostScript, pump
from loadtest.graph import (
    LOADTEST_SHAPE,
    GraphShape,
    SocialGraph,
    build_graph,
    holds_graph,
    reset_activity,
    reset_tables,
    seed_graph,
)
from loadtest.latency import FeedProbe, OpenLoop, summarize
from loadtest.offload import DriverFailed, DriverProcesses, DriverSpec, Live, StreamOutcome
from loadtest.processes import ProcessGroup, running
from loadtest.report import LoadReport, draw, stream_result
from loadtest.search_probe import IndexVersions, PostgresVersions, SearchProbe, VersionSource
from pipelines.feed.enrichment import stale_cache_key
from store.db import create_pool, with_database
from store.migrate import upgrade

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

Mode = Literal["direct", "api"]
LOAD_POLLERS = 4
# Requests each driver process keeps in flight: on a busy machine a round trip
# (UPDATE or PublishBatch) takes a second or more, and the schedule must not wait.
DRIVER_SENDERS = 16
Progress = Callable[[str], None]
# Runs after the load while everything is still up; returns lines for the report.
Epilogue = Callable[["Harness"], Awaitable[list[str]]]


@dataclass(frozen=True)
class LoadOptions:
    users: int = 30_000
    shape: GraphShape = LOADTEST_SHAPE
    posts_per_minute: float = 1000.0
    profile_updates_per_second: float = 50.0
    duration: float = 60.0
    warmup: float = 10.0
    workers: int = 1
    notifications_workers: int = 0
    concurrency: int | None = None
    attach: bool = False
    emulator: emu.Emulator | Literal["auto", "none"] = "fauxqs"
    mode: Mode = "direct"
    slo_feed_p95: float | None = 2.0
    slo_search_p95: float | None = 5.0
    database: str = "socialpipe_loadtest"
    seed: int = 7
    hub_post_share: float = 0.005
    drain_seconds: float = 30.0
    out_dir: Path = Path("out/loadtest")
    picture: bool = True
    senders: int = 4


@dataclass
class Harness:
    """What a run holds open while the load flows."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    sqs: SQSClient
    topology: Topology
    graph: SocialGraph
    connections: int
    feed_probe: FeedProbe
    search_probe: SearchProbe
    group: ProcessGroup | None = None
    api: GraphQL | None = None
    load_at_start: str = "n/a"
    backlog_max: dict[str, int] = field(default_factory=dict)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_settings(base: Settings, options: LoadOptions, endpoint: str | None) -> Settings:
    update: dict[str, Any] = {
        "database_url": with_database(base.database_url, options.database),
        # Short long-polls so workers stop quickly; a receive returns as soon as
        # messages arrive, so latency does not depend on it.
        "receive_wait_seconds": min(base.receive_wait_seconds, 2),
        # Each poller has one receive in flight; under load a receive round trip
        # waits for a CPU, so two pollers capped a worker at ~20 messages per trip.
        "pollers": max(base.pollers, LOAD_POLLERS),
        "log_level": "WARNING",
    }
    if endpoint is not None:
        update["aws_endpoint_url"] = endpoint
    if options.mode == "api" and base.api_token_secret is None:
        update["api_token_secret"] = secrets.token_urlsafe(48)
    return base.model_copy(update=update)


@contextlib.contextmanager
def _endpoint(options: LoadOptions) -> Any:
    if options.attach or options.emulator == "none":
        yield None
        return
    with emu.emulator(emu.pick(options.emulator)) as url:
        yield url


async def prepare(stack: AsyncExitStack, settings: Settings, options: LoadOptions) -> Harness:
    """Migrate, reset and seed; open the clients and the topology; build the probes."""
    await upgrade(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=2, max_size=12)
    stack.push_async_callback(pool.close)
    redis = await open_redis(stack, settings, max_connections=16)
    graph = await asyncio.to_thread(
        build_graph, options.users, seed=options.seed, shape=options.shape
    )
    if await holds_graph(pool, graph):
        # The graph is deterministic for its options: seeding it again would only cost time.
        await reset_activity(pool)
        connections = len(graph.edges)
    else:
        await reset_tables(pool)
        connections = (await seed_graph(pool, graph)).connections
    await forget_users(redis, graph.users)
    sqs = await open_sqs(stack, settings, pool=16)
    sns = await open_sns(stack, settings, pool=16)
    topology = await ensure_topology(sqs, sns, settings)
    feed_probe = FeedProbe(redis, interval=0.02, batch_size=settings.fanout_batch_size)
    versions: VersionSource = (
        PostgresVersions(pool)
        if settings.search_backend == "postgres"
        else await _index(stack, settings)
    )
    search_probe = SearchProbe(versions)
    return Harness(
        settings, pool, redis, sqs, topology, graph, connections, feed_probe, search_probe
    )


async def _index(stack: AsyncExitStack, settings: Settings) -> VersionSource:
    from config.search import open_search_index

    return IndexVersions(await open_search_index(stack, settings))


async def forget_users(redis: aioredis.Redis, users: tuple[Any, ...]) -> None:
    """Delete the graph users' feeds and cached connections, so a run starts cold and empty."""
    keys = [k for u in users for k in (feed_key(u), connections_cache_key(u), stale_cache_key(u))]
    for start in range(0, len(keys), 5000):
        await redis.delete(*keys[start : start + 5000])


def build_group(h: Harness, options: LoadOptions) -> ProcessGroup | None:
    if options.attach:
        return None
    group = ProcessGroup(h.settings, options.out_dir / "logs")
    for i in range(options.workers):
        group.add_worker("feed", i, options.concurrency)
        group.add_worker("search", i, options.concurrency)
    for i in range(options.notifications_workers):
        group.add_worker("notifications", i)
    return group


async def queue_depths(sqs: SQSClient, urls: dict[str, str]) -> dict[str, int]:
    """Visible plus in-flight messages per queue."""
    depths: dict[str, int] = {}
    for name, url in urls.items():
        got = await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        depths[name] = sum(int(v) for v in got.get("Attributes", {}).values())
    return depths


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
    """Sample queue depths once a second for the report and the live progress line."""
    urls = dict(h.topology.queue_urls)
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a slow emulator must not end the run
            depths = await queue_depths(h.sqs, urls)
            for name, depth in depths.items():
                h.backlog_max[name] = max(h.backlog_max.get(name, 0), depth)
            progress(progress_line(*live(), depths, time.time() - t0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def progress_line(posts: Live, profiles: Live, depths: dict[str, int], elapsed: float) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1000:.0f}"

    backlog = " ".join(f"{k}={v}" for k, v in depths.items())
    return (
        f"t={elapsed:5.1f}s posts seen {posts.seen} (P95 recent {ms(posts.recent_p95)} ms)"
        f" | profiles seen {profiles.seen} (P95 recent {ms(profiles.recent_p95)} ms)"
        f" | backlog {backlog}"
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
        backlog = await queue_depths(h.sqs, dict(h.topology.queue_urls))
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
    await asyncio.gather(
        h.feed_probe.drain(options.drain_seconds), h.search_probe.drain(options.drain_seconds)
    )
    return Driven(
        t0,
        _outcome(posts, post_loop.total, h.feed_probe, len(h.feed_probe.pending)),
        _outcome(profiles, profile_loop.total, h.search_probe, len(h.search_probe.pending)),
        backlog,
    )


def _outcome(
    driver: Driver, offered: int, probe: FeedProbe | SearchProbe, missed: int
) -> StreamOutcome:
    return StreamOutcome(
        offered=offered,
        stats=driver.stats,
        samples=probe.samples,
        not_visible=missed,
        watched=probe.watched,
        feeds_checked=getattr(probe, "feeds_checked", 0),
        posts=list(getattr(probe, "posts", [])),
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
        "topic_arn": h.topology.topic_arn,
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
        backlog = await queue_depths(h.sqs, dict(h.topology.queue_urls))
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
    with _endpoint(options) as endpoint:
        settings = run_settings(base, options, endpoint)
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
                if api_url is not None:
                    driven = await drive_through_api(stack, h, options, api_url, say)
                else:
                    driven = await drive_offloaded(h, options, say)
                dlq = await queue_depths(h.sqs, dict(h.topology.dlq_urls))
                notes = await epilogue(h) if epilogue else []
            await forget_markers(h, driven.posts.posts)
            report = assemble(h, options, driven, dlq, load_before, time.monotonic() - started)
    if options.picture:
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
    keys = [fanout_marker_key(p) for p in posts]
    for start in range(0, len(keys), 5000):
        await h.redis.delete(*keys[start : start + 5000])


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
    )
