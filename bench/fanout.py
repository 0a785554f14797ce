"""Benchmark of the feed distribution stage against raw `redis-benchmark` LPUSH.

Runs the real `Distributor` + `RedisFeedStore` (no SQS, no PostgreSQL) pushing
one post id to N feeds, on fresh feeds and on feeds pre-filled to the feed
limit (the steady state: every push also trims), in a separate Redis database
flushed before and after. The reference is `redis-benchmark -q -t lpush -P 100`
run in the same process before and after; the ratio is entries/s divided by
the mean reference requests/s, so figures from shared machines stay comparable.

With `--cluster` the same runs go through `ClusterFeedStore` on a Redis Cluster:
a local one of 3 masters started for the run (bench/cluster.py), or the one of
`--cluster-url` (all its masters are flushed); the reference is then
`redis-benchmark --cluster -t lpush -P 100` on that cluster.

The reference pushes to one list per server. A fan-out creates a list per
fresh feed, which costs Redis itself more than twice a push to a list that
exists, so the run also measures the fresh-key floor: `redis-benchmark` (C,
50 clients, `-P 100`) pushing each request to a new key (`-r`), on the same
target, and gives each scenario's entries/s as a share of it (`of floor`).
`cli µs` is the benchmark process's own CPU per entry (user + system) during
the timed runs: the client's share of the work, which the ratio cannot show.

    python -m bench.fanout [--sizes 10000,100000] [--full-sizes 10000,100000] ...
    python -m bench.fanout --cluster [--cluster-url redis+cluster://host:port/0] ...
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.cluster import RedisCluster

from bench.cluster import ClusterTarget, LocalCluster, cluster_benchmark_args
from config.settings import load_settings
from contracts.keys import feed_key
from loadtest.redis_binaries import RedisBinaryError, find_redis_binary
from pipelines.feed.distribution import Distributor
from pipelines.feed.ports import FeedStore
from pipelines.feed.redis_feeds import RedisFeedStore, trim_slack
from transforms.fanout import FanoutPlan, PackedIds, plan_fanout

REFERENCE_RE = re.compile(r"LPUSH:\s*([\d.]+)\s+requests per second")
RATE_RE = re.compile(r"([\d.]+)\s+requests per second")
# The fresh-key floor's key: `{tag}` is the node's hash tag under --cluster, literal text
# otherwise; every request draws a new __rand_int__, so nearly every push makes a list.
FLOOR_KEY = "feed:{tag}:__rand_int__"
FLOOR_KEYSPACE = "1000000000"
RESTORE_CHUNK = 1000
REFERENCE_KEY = "mylist"  # where redis-benchmark's LPUSH test writes


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    redis_url: str
    sizes: tuple[int, ...]
    full_sizes: tuple[int, ...]
    batch_size: int
    parallelism: int
    max_length: int
    repeat: int
    reference_requests: int
    paired_requests: int
    floor_requests: int = 0
    cluster: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    feeds: int
    prefilled: bool
    seconds: list[float]
    paired_references: list[float]
    server_usec_per_entry: float
    redelivery_seconds: float
    client_usec_per_entry: float = 0.0
    arrange_usec_per_entry: float = 0.0

    @property
    def entries_per_second(self) -> float:
        return self.feeds / statistics.median(self.seconds)

    @property
    def best_entries_per_second(self) -> float:
        return self.feeds / min(self.seconds)

    @property
    def paired_ratio(self) -> float | None:
        """Median over runs of entries/s ÷ the reference measured just before that run."""
        if not self.paired_references:
            return None
        pairs = zip(self.seconds, self.paired_references, strict=True)
        return statistics.median(self.feeds / s / ref for s, ref in pairs)


class Target(Protocol):
    """Where the benchmark runs: one Redis database, or a Redis Cluster."""

    label: str

    @property
    def client(self) -> aioredis.Redis | RedisCluster: ...

    async def open(self) -> None: ...
    def store(self, *, max_length: int, marker_ttl: int) -> FeedStore: ...
    async def flush(self) -> None: ...
    async def script_usec(self) -> float: ...
    def arrange(self, ids: PackedIds) -> PackedIds: ...
    async def drop_reference(self) -> None: ...
    def reference_args(self) -> list[str]: ...
    async def close(self) -> None: ...


class SingleTarget:
    """One Redis server and database, `RedisFeedStore` (the default mode)."""

    label = "redis-benchmark LPUSH -P 100"

    def __init__(self, url: str, *, max_connections: int) -> None:
        self.url = url
        self.client = aioredis.Redis.from_url(
            url, max_connections=max_connections, socket_timeout=60
        )

    async def open(self) -> None:
        return None

    def store(self, *, max_length: int, marker_ttl: int) -> RedisFeedStore:
        return RedisFeedStore(self.client, max_length=max_length, marker_ttl=marker_ttl)

    async def flush(self) -> None:
        await flush_and_settle(self.client)

    def arrange(self, ids: PackedIds) -> PackedIds:
        """The ids as the connection cache holds them for this target: as they are."""
        return ids

    async def script_usec(self) -> float:
        """CPU time Redis has spent in EVALSHA so far (INFO commandstats), in µs."""
        stats = await self.client.info("commandstats")
        return float(stats.get("cmdstat_evalsha", {}).get("usec", 0))

    async def drop_reference(self) -> None:
        await self.client.unlink(REFERENCE_KEY)

    def reference_args(self) -> list[str]:
        return redis_benchmark_args(self.url)

    async def close(self) -> None:
        await self.client.flushdb(asynchronous=True)
        await self.client.aclose()


def make_target(options: Options) -> Target:
    connections = options.parallelism + 4
    if options.cluster:
        return ClusterTarget(options.redis_url, max_connections=connections)
    return SingleTarget(options.redis_url, max_connections=connections)


def redis_benchmark_args(url: str) -> list[str]:
    """`redis-benchmark` arguments for the server and database of a `redis://` URL."""
    parts = urlsplit(url)
    cmd = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    cmd += ["--dbnum", parts.path.lstrip("/") or "0"]
    if parts.password:
        cmd += ["-a", parts.password, "--no-auth-warning"]
    return cmd


def redis_benchmark(url: str, requests: int) -> float:
    """Requests/s of raw pipelined LPUSH on the same server and database."""
    return run_redis_benchmark(redis_benchmark_args(url), requests)


def run_redis_benchmark(args: Sequence[str], requests: int) -> float:
    """Requests/s of `redis-benchmark <args> -q -t lpush -P 100 -n <requests>`."""
    return _redis_benchmark_rate([*args, "-t", "lpush"], [], requests, REFERENCE_RE)


def run_fresh_key_floor(args: Sequence[str], requests: int) -> float:
    """Requests/s of `redis-benchmark` LPUSHing one post id to a new key per request."""
    command = ["LPUSH", FLOOR_KEY, str(uuid.uuid4())]
    return _redis_benchmark_rate([*args, "-r", FLOOR_KEYSPACE], command, requests, RATE_RE)


def _redis_benchmark_rate(
    options: Sequence[str], command: Sequence[str], requests: int, pattern: re.Pattern[str]
) -> float:
    try:
        exe = find_redis_binary("redis-benchmark")
    except RedisBinaryError as exc:
        raise SystemExit(f"{exc}; it provides the reference figure.") from exc
    cmd = [exe, *options, "-q", "-P", "100", "-n", str(requests), *command]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    found = pattern.findall(out.replace("\r", "\n"))
    if not found:
        raise SystemExit(f"Could not read redis-benchmark output: {out[-200:]!r}.")
    return float(found[-1])


async def prefill(
    client: aioredis.Redis | RedisCluster, recipients: Sequence[uuid.UUID], length: int
) -> None:
    """Give every feed `length` older post ids, or up to `trim_slack(length)` more.

    A full feed in the steady state holds anything from its max length to the
    trim threshold (pipelines/feed/redis_feeds.py `trim_slack`), so feeds are
    spread evenly over those lengths: the run pays the trims a real steady state
    pays (one feed in `slack + 1` is trimmed by this push). One list per length
    is built once, then RESTOREd.
    """
    payloads = []
    for extra in range(trim_slack(length) + 1):
        template = "bench:template"
        olds = [str(uuid.uuid4()) for _ in range(length + extra)]
        await client.rpush(template, *olds)
        payload = await client.dump(template)
        await client.delete(template)
        if payload is None:
            raise SystemExit("Could not DUMP the template feed.")
        payloads.append(payload)
    for start in range(0, len(recipients), RESTORE_CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for i, user in enumerate(recipients[start : start + RESTORE_CHUNK], start):
                pipe.restore(feed_key(user), 0, payloads[i % len(payloads)], replace=True)
            await pipe.execute()


async def flush_and_settle(client: aioredis.Redis, deadline: float = 60.0) -> None:
    """Empty the database without blocking Redis, and wait for the background
    free to finish so it does not compete with the timed run."""
    await client.flushdb(asynchronous=True)
    give_up = time.monotonic() + deadline
    while (await client.info("memory")).get("lazyfree_pending_objects", 0):
        if time.monotonic() > give_up:
            break
        await asyncio.sleep(0.05)


async def timed_distribution(distributor: Distributor, plan: FanoutPlan, *, careful: bool) -> float:
    owner = secrets.token_hex(8)
    start = time.perf_counter()
    report = await distributor.distribute(plan, owner=owner, careful=careful)
    elapsed = time.perf_counter() - start
    expected = 0 if careful else plan.recipient_count
    if report.failed or report.written != expected:
        raise SystemExit(f"Distribution wrote {report.written} of {expected} feeds.")
    return elapsed


async def check_feeds(
    client: aioredis.Redis | RedisCluster, plan: FanoutPlan, max_length: int, prefilled: bool
) -> None:
    """Spot-check: the post at the head, lengths capped."""
    post = str(plan.post_id).encode()
    sample = [b.recipients[0] for b in plan.batches] + [plan.batches[-1].recipients[-1]]
    for user in sample:
        head = await client.lindex(feed_key(user), 0)
        length = await client.llen(feed_key(user))
        lowest, highest = (max_length, max_length + trim_slack(max_length)) if prefilled else (1, 1)
        if head != post or not lowest <= length <= highest:
            raise SystemExit(
                f"Feed of {user} is wrong after the run ({'full' if prefilled else 'fresh'},"
                f" post {post.decode()}): head {head!r}, length {length}; is another process"
                " using this Redis database?"
            )


async def scenario(target: Target, options: Options, feeds: int, *, prefilled: bool) -> Scenario:
    client = target.client
    store = target.store(max_length=options.max_length, marker_ttl=86_400)
    distributor = Distributor(store, parallelism=options.parallelism)
    # Packed and sorted, as the worker gets them from PostgreSQL or the connection cache;
    # on a cluster the cache holds them in slot order, arranged once when it is filled.
    packed = b"".join(sorted(uuid.uuid4().bytes for _ in range(feeds)))
    start = time.perf_counter()
    recipients = target.arrange(PackedIds(packed, ordered=True))
    arrange_usec = (time.perf_counter() - start) * 1e6 / feeds
    base = plan_fanout(uuid.uuid4(), uuid.uuid4(), recipients, options.batch_size)
    seconds: list[float] = []
    references: list[float] = []
    server_usec: list[float] = []
    client_usec: list[float] = []
    plan = base
    if prefilled:
        # Filled once: after each push the feeds are full again, the steady state.
        await target.flush()
        await prefill(client, recipients, options.max_length)
    for _ in range(options.repeat):
        if options.paired_requests:
            references.append(await paired_reference(target, options))
        if not prefilled:
            await target.flush()
        plan = dataclasses.replace(base, post_id=uuid.uuid4())
        script_before = await target.script_usec()
        cpu_before = time.process_time()
        seconds.append(await timed_distribution(distributor, plan, careful=False))
        client_usec.append((time.process_time() - cpu_before) * 1e6)
        server_usec.append(await target.script_usec() - script_before)
        await check_feeds(client, plan, options.max_length, prefilled)
    # A redelivery of the last post: another owner, so every feed is checked first.
    redelivery = await timed_distribution(distributor, plan, careful=True)
    await target.flush()
    return Scenario(
        feeds,
        prefilled,
        seconds,
        references,
        statistics.median(server_usec) / feeds,
        redelivery,
        statistics.median(client_usec) / feeds,
        arrange_usec,
    )


async def paired_reference(target: Target, options: Options) -> float:
    """A short reference run right before a timed run: on a shared machine the load
    changes within seconds, so a ratio per pair is steadier than one over minutes."""
    args = target.reference_args()
    rps = await asyncio.to_thread(run_redis_benchmark, args, options.paired_requests)
    await target.drop_reference()
    return rps


async def warm_up(target: Target, options: Options) -> None:
    """Load the script and open the pool's connections outside the timed runs."""
    store = target.store(max_length=options.max_length, marker_ttl=60)
    plan = plan_fanout(uuid.uuid4(), uuid.uuid4(), [uuid.uuid4() for _ in range(2000)], 100)
    await Distributor(store, parallelism=options.parallelism).distribute(
        plan, owner="warm-up", careful=False
    )
    await target.flush()


async def run_scenarios(options: Options) -> list[Scenario]:
    target = make_target(options)
    try:
        await target.open()
        await target.flush()
        await warm_up(target, options)
        results = [await scenario(target, options, n, prefilled=False) for n in options.sizes]
        results += [await scenario(target, options, n, prefilled=True) for n in options.full_sizes]
        return results
    finally:
        await target.close()


def report(
    options: Options, results: list[Scenario], before: float, after: float, floor: float | None
) -> None:
    reference = (before + after) / 2
    label = ClusterTarget.label if options.cluster else SingleTarget.label
    print(f"reference: {label}: {before:,.0f} / {after:,.0f} req/s")
    if floor:
        print(
            f"fresh-key floor: the same, one new key per request: {floor:,.0f} req/s"
            f" ({floor / reference:.3f} of the reference)"
        )
    print(
        f"batch size {options.batch_size}, parallelism {options.parallelism},"
        f" feed limit {options.max_length}, median of {options.repeat} runs"
    )
    header = f"{'feeds':>8} {'state':<6} {'entries/s':>11} {'ratio':>6} {'best':>6}"
    print(header + f" {'paired':>6} {'srv µs':>6} {'cli µs':>6} {'redeliv/s':>11} {'of floor':>8}")
    for r in results:
        paired = f"{r.paired_ratio:>6.3f}" if r.paired_ratio is not None else f"{'-':>6}"
        of_floor = f"{r.entries_per_second / floor:>8.3f}" if floor else f"{'-':>8}"
        print(
            f"{r.feeds:>8} {'full' if r.prefilled else 'fresh':<6}"
            f" {r.entries_per_second:>11,.0f} {r.entries_per_second / reference:>6.3f}"
            f" {r.best_entries_per_second / reference:>6.3f} {paired}"
            f" {r.server_usec_per_entry:>6.2f} {r.client_usec_per_entry:>6.2f}"
            f" {r.feeds / r.redelivery_seconds:>11,.0f} {of_floor}"
        )
    if options.cluster:
        arrange = ", ".join(f"{r.arrange_usec_per_entry:.2f}" for r in results)
        print(
            f"slot order of the recipients (once per connection-cache fill, not timed):"
            f" {arrange} µs per recipient"
        )
    print(orjson.dumps(_summary(options, results, before, after, floor)).decode())


def _summary(
    options: Options, results: list[Scenario], before: float, after: float, floor: float | None
) -> dict[str, Any]:
    reference = (before + after) / 2
    return {
        "bench": "fanout",
        "mode": "cluster" if options.cluster else "single",
        "reference_lpush_rps": {"before": before, "after": after, "mean": reference},
        "fresh_key_floor_rps": floor,
        "batch_size": options.batch_size,
        "parallelism": options.parallelism,
        "feed_max_length": options.max_length,
        "repeat": options.repeat,
        "scenarios": [
            {
                "feeds": r.feeds,
                "state": "full" if r.prefilled else "fresh",
                "entries_per_second": round(r.entries_per_second),
                "ratio": round(r.entries_per_second / reference, 4),
                "best_ratio": round(r.best_entries_per_second / reference, 4),
                "paired_ratio": None if r.paired_ratio is None else round(r.paired_ratio, 4),
                "paired_references": [round(x) for x in r.paired_references],
                "server_usec_per_entry": round(r.server_usec_per_entry, 3),
                "client_cpu_usec_per_entry": round(r.client_usec_per_entry, 3),
                "arrange_usec_per_entry": round(r.arrange_usec_per_entry, 3),
                "of_fresh_key_floor": round(r.entries_per_second / floor, 4) if floor else None,
                "seconds": [round(s, 4) for s in r.seconds],
                "redelivery_checks_per_second": round(r.feeds / r.redelivery_seconds),
            }
            for r in results
        ],
    }


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s.strip())


def parse_args(argv: Sequence[str]) -> Options:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--db", type=int, default=14, help="Redis database to use (flushed)")
    parser.add_argument("--sizes", type=_sizes, default=(10_000, 100_000))
    parser.add_argument(
        "--full-sizes",
        type=_sizes,
        default=None,
        help="pre-filled feeds (default 10000,100000; 10000 with --cluster)",
    )
    parser.add_argument("--batch-size", type=int, default=settings.fanout_batch_size)
    parser.add_argument("--parallelism", type=int, default=settings.fanout_parallelism)
    parser.add_argument("--max-length", type=int, default=settings.feed_max_length)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-requests", type=int, default=1_000_000)
    parser.add_argument(
        "--paired-requests",
        type=int,
        default=300_000,
        help="requests of the short reference before each timed run (0: none)",
    )
    parser.add_argument(
        "--floor-requests",
        type=int,
        default=300_000,
        help="requests of the fresh-key floor, one new key each (0: not measured)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on a local 3-master Redis Cluster started for the run",
    )
    parser.add_argument(
        "--cluster-url",
        help="run on this Redis Cluster instead (redis+cluster://host:port/0; FLUSHED)",
    )
    args = parser.parse_args(argv)
    cluster = args.cluster or args.cluster_url is not None
    full_sizes = args.full_sizes
    if full_sizes is None:
        full_sizes = (10_000,) if cluster else (10_000, 100_000)
    return Options(
        redis_url=(args.cluster_url or "") if cluster else _with_db(settings.redis_url, args.db),
        sizes=args.sizes,
        full_sizes=full_sizes,
        batch_size=args.batch_size,
        parallelism=args.parallelism,
        max_length=args.max_length,
        repeat=args.repeat,
        reference_requests=args.reference_requests,
        paired_requests=args.paired_requests,
        floor_requests=args.floor_requests,
        cluster=cluster,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m bench.fanout`."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if not options.cluster or options.redis_url:
        run(options)
        return
    local = LocalCluster(masters=3)
    try:
        local.start()
        run(dataclasses.replace(options, redis_url=local.url))
    finally:
        local.close()


def run(options: Options) -> None:
    """The reference, the scenarios, the reference again, then the report."""
    args = cluster_benchmark_args(options.redis_url) if options.cluster else None
    args = args or redis_benchmark_args(options.redis_url)
    before = run_redis_benchmark(args, options.reference_requests)
    floor = None
    try:
        if options.floor_requests:
            # Its keys go with the flush that starts the scenarios.
            floor = run_fresh_key_floor(args, options.floor_requests)
        # uvloop, as the worker runs under `socialpipe` (cli.common.run).
        results = uvloop.run(run_scenarios(options))
    finally:
        after = run_redis_benchmark(args, options.reference_requests)
        if options.cluster:
            asyncio.run(_flush_cluster(options.redis_url))
        else:
            asyncio.run(_flush(options.redis_url))
    report(options, results, before, after, floor)


async def _flush_cluster(url: str) -> None:
    target = ClusterTarget(url, max_connections=2)
    try:
        await target.open()
        await target.flush()
    finally:
        await target.close()


async def _flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb(asynchronous=True)
    finally:
        await client.aclose()


if __name__ == "__main__":
    main()
