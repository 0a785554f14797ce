"""Benchmark of `reconcile search` (PostgreSQL backend), and what it costs live indexing.

Seeds N profiles with COPY into a separate database (`socialpipe_bench_reconcile`,
recreated each run, seeding reused from `bench.search_index`), indexes them all
with the pipeline's stage, injects 1 % drift, then measures in the same run:

1. reconcile alone: users/s over every user plus the orphan scan (the target
   is >= 5,000 users/s at parallelism 4);
2. the indexing capacity: profile updates (version bumps) re-indexed in batches
   of 100 as fast as one indexer can, as the search worker does — updates/s;
3. a live load at a fixed share of that capacity (`--live-share`, open loop:
   batches arrive on time whether or not the indexer keeps up), its achieved
   rate and the P95 of a batch's arrival-to-indexed latency: alone, then beside
   a reconcile run unthrottled, at a fixed `--max-rate`, and with the adaptive
   pace (which reads the live load's waiting batches as its backlog signal),
   with a live-alone run between each to show the machine's drift; and the
   reconcile rate each achieved meanwhile.

    python -m bench.reconcile [--profiles 100000] [--parallelism 4] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from bench.search_index import id_batches, seed
from config.reconcile import FLOOR_RATE, START_RATE
from config.settings import load_settings
from contracts.pacing import AdaptiveOptions, AdaptivePacer, Pacer, RateLimiter
from pipelines.search.handler import index_users, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.search import SearchReconcileOptions, SearchReconciler
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade

BENCH_DB = "socialpipe_bench_reconcile"
LOAD_BATCH = 100


async def index_everything(pool: asyncpg.Pool, batch_size: int) -> list[uuid.UUID]:
    index, load = PostgresSearchIndex(pool), pool_loader(pool)
    ids: list[uuid.UUID] = []
    for batch in await id_batches(pool, batch_size):
        await index_users(load, index, batch)
        ids.extend(batch)
    return ids


async def inject_drift(pool: asyncpg.Pool, ids: Sequence[uuid.UUID], rng: random.Random) -> int:
    victims = rng.sample(list(ids), len(ids) // 100)
    half = len(victims) // 2
    await pool.execute("DELETE FROM search_documents WHERE user_id = ANY($1)", victims[:half])
    await pool.execute(
        "UPDATE search_documents SET version = version - 1, full_name = 'Stale'"
        " WHERE user_id = ANY($1)",
        victims[half:],
    )
    return len(victims)


async def indexing_load(
    pool: asyncpg.Pool, ids: Sequence[uuid.UUID], stop: asyncio.Event, rng: random.Random
) -> tuple[int, float]:
    """Profile updates re-indexed in batches until `stop`; returns (updates, seconds)."""
    index, load = PostgresSearchIndex(pool), pool_loader(pool)
    done, started = 0, time.perf_counter()
    while not stop.is_set():
        batch = rng.sample(list(ids), LOAD_BATCH)
        await pool.execute(
            "UPDATE user_profiles SET headline = 'Updated ' || $2 WHERE user_id = ANY($1)",
            batch,
            str(done),
        )
        await index_users(load, index, batch)
        done += len(batch)
    return done, time.perf_counter() - started


async def load_for(
    pool: asyncpg.Pool, ids: Sequence[uuid.UUID], seconds: float, rng: random.Random
) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(indexing_load(pool, ids, stop, rng))
    await asyncio.sleep(seconds)
    stop.set()
    done, elapsed = await task
    return done / elapsed


@dataclass
class Live:
    """An open-loop live indexing load: batches of LOAD_BATCH profile updates arrive
    at a fixed rate (like events on the search queue) and one indexer works through
    them; each batch's latency runs from its arrival to its indexing."""

    rate: float
    latencies: list[float] = field(default_factory=list)
    done: int = 0
    queue: asyncio.Queue[float] = field(default_factory=asyncio.Queue)

    async def backlog(self) -> int:
        """Updates waiting (one event each on a real queue): what the adaptive pace
        reads as the live queue's backlog."""
        return self.queue.qsize() * LOAD_BATCH

    def p95(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0.0


async def run_live(
    pool: asyncpg.Pool,
    ids: Sequence[uuid.UUID],
    live: Live,
    stop: asyncio.Event,
    rng: random.Random,
) -> float:
    """Arrivals at `live.rate` updates/s until `stop`, then the rest drained; seconds taken."""
    index, load = PostgresSearchIndex(pool), pool_loader(pool)
    started = time.perf_counter()

    async def arrive() -> None:
        period = LOAD_BATCH / live.rate
        due = time.perf_counter()
        while not stop.is_set():
            live.queue.put_nowait(due)
            due += period
            await asyncio.sleep(max(0.0, due - time.perf_counter()))

    arrivals = asyncio.create_task(arrive())
    while not (stop.is_set() and live.queue.empty()):
        try:
            arrived = await asyncio.wait_for(live.queue.get(), 0.1)
        except TimeoutError:
            continue
        # In id order, as the reconcile writes: the two never wait on each other in a
        # cycle. A deadlock that happens anyway is retried, as the worker's would be.
        batch = sorted(rng.sample(list(ids), LOAD_BATCH))
        for attempt in range(3):
            try:
                await pool.execute(
                    "UPDATE user_profiles SET headline = 'Updated ' || $2 WHERE user_id = ANY($1)",
                    batch,
                    str(live.done),
                )
                await index_users(load, index, batch)
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == 2:
                    raise
        live.latencies.append(time.perf_counter() - arrived)
        live.done += LOAD_BATCH
    await arrivals
    return time.perf_counter() - started


class Counted:
    """A pace that counts the units it let through (the reconcile's progress)."""

    def __init__(self, inner: Pacer) -> None:
        self.inner, self.units = inner, 0

    async def acquire(self, units: int = 1) -> None:
        await self.inner.acquire(units)
        self.units += units

    def observe(self, units: int, seconds: float) -> None:
        self.inner.observe(units, seconds)


@dataclass
class Shared:
    label: str
    live_rate: float
    live_p95: float
    reconcile_rate: float


async def live_beside(
    pool: asyncpg.Pool,
    ids: Sequence[uuid.UUID],
    args: argparse.Namespace,
    rng: random.Random,
    live_rate: float,
    pace: str | None,
) -> Shared:
    """The live load alone (`pace` None) or beside a reconcile paced `pace`, for
    at most `--during-seconds` (a reconcile still running then is stopped)."""
    live, stop = Live(live_rate), asyncio.Event()
    task = asyncio.create_task(run_live(pool, ids, live, stop, rng))
    counted: Counted | None = None
    started = time.perf_counter()
    if pace is None:
        await asyncio.sleep(args.during_seconds)
    else:
        counted = Counted(pacer_for(pace, args, live))
        options = SearchReconcileOptions(batch_size=args.batch_size, parallelism=args.parallelism)
        run = SearchReconciler(pool, PostgresSearchIndex(pool), options, pacer=counted).run()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run, args.during_seconds)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return Shared(
        pace or "alone",
        live.done / elapsed,
        live.p95(),
        counted.units / elapsed if counted else 0.0,
    )


def pacer_for(pace: str, args: argparse.Namespace, live: Live) -> Pacer:
    if pace == "unthrottled":
        return RateLimiter(None)
    if pace == "fixed":
        return RateLimiter(args.max_rate)
    return AdaptivePacer(
        AdaptiveOptions(ceiling=None, floor=FLOOR_RATE, start=START_RATE), live.backlog
    )


async def main(args: argparse.Namespace) -> int:
    url = with_database(load_settings().database_url, BENCH_DB)
    await drop_database(url)
    await upgrade(url)
    pool = await create_pool(url, max_size=args.parallelism + 4)
    rng = random.Random(args.seed)
    try:
        t0 = time.perf_counter()
        await seed(pool, args.profiles, rng)
        ids = await index_everything(pool, args.batch_size)
        drift = await inject_drift(pool, ids, rng)
        await pool.execute("VACUUM ANALYZE search_documents")
        print(
            f"seeded and indexed {len(ids):,} profiles in {time.perf_counter() - t0:.1f} s;"
            f" {drift:,} drifted"
        )
        alone = await SearchReconciler(
            pool,
            PostgresSearchIndex(pool),
            SearchReconcileOptions(batch_size=args.batch_size, parallelism=args.parallelism),
        ).run()
        print(
            f"reconcile alone:  {alone.checked:,} users in {alone.duration:.2f} s ="
            f" {alone.users_per_second:,.0f} users/s (drift {alone.drift:,},"
            f" repaired {alone.repaired:,})"
        )
        capacity = await load_for(pool, ids, args.load_seconds, rng)
        live_rate = capacity * args.live_share
        print(
            f"indexing capacity: {capacity:,.0f} updates/s; live load at"
            f" {args.live_share:.0%} of it: {live_rate:,.0f} updates/s"
        )
        runs = [await live_beside(pool, ids, args, rng, live_rate, None)]
        for pace in ("unthrottled", "fixed", "adaptive"):
            runs.append(await live_beside(pool, ids, args, rng, live_rate, pace))
            # The alone figure again after each, so a drifting machine shows.
            runs.append(await live_beside(pool, ids, args, rng, live_rate, None))
    finally:
        await pool.close()
        if not args.keep:
            await drop_database(url)
    print_shared(runs, args)
    ok = alone.users_per_second >= 5000 and alone.repaired == drift
    print(f"target >= 5,000 users/s alone: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def print_shared(runs: list[Shared], args: argparse.Namespace) -> None:
    """Each paced run against the mean of the live-alone runs around it."""
    print(f"{'beside':>26} {'live/s':>9} {'rate':>6} {'P95 ms':>8} {'P95':>6} {'reconcile/s':>12}")
    for i, run in enumerate(runs):
        if run.label == "alone":
            print(f"{'(alone)':>26} {run.live_rate:9,.0f} {'':>6} {run.live_p95 * 1000:8.1f}")
            continue
        before, after = runs[i - 1], runs[i + 1]
        base_rate = (before.live_rate + after.live_rate) / 2
        base_p95 = (before.live_p95 + after.live_p95) / 2
        label = {"fixed": f"fixed --max-rate {args.max_rate:,.0f}"}.get(run.label, run.label)
        print(
            f"{label:>26} {run.live_rate:9,.0f} {run.live_rate / base_rate:6.2f}"
            f" {run.live_p95 * 1000:8.1f} {run.live_p95 / base_p95:6.2f}"
            f" {run.reconcile_rate:12,.0f}"
        )
    print(
        "rate and P95 are against the mean of the live-alone runs before and after;"
        " the target for adaptive: rate >= 0.90 and P95 <= 1.10"
    )


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--max-rate", type=float, default=2000.0, help="The fixed pace's rate.")
    parser.add_argument(
        "--live-share",
        type=float,
        default=0.5,
        help="The live load's rate as a share of the indexing capacity measured alone.",
    )
    parser.add_argument(
        "--during-seconds",
        type=float,
        default=20.0,
        help="How long each live run lasts; a reconcile still running then is stopped.",
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the bench database afterwards.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
