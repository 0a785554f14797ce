"""Benchmark of `reconcile search` (PostgreSQL backend), and what it costs a live indexing load.

Seeds N profiles with COPY into a separate database (`socialpipe_bench_reconcile`,
recreated each run, seeding reused from `bench.search_index`), indexes them all
with the pipeline's stage, injects 1 % drift, then measures in the same run:

1. reconcile alone: users/s over every user plus the orphan scan (the target
   is >= 5,000 users/s at parallelism 4);
2. an indexing load alone for a few seconds: profile updates (version bumps)
   re-indexed in batches of 100, as the search worker does — updates/s;
3. the same indexing load while a second reconcile runs unthrottled, and again
   with `--max-rate` (what the nightly CronJob uses): updates/s, and the
   slowdown against (2).

    python -m bench.reconcile [--profiles 200000] [--parallelism 4] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Sequence

import asyncpg

from bench.search_index import id_batches, seed
from config.settings import load_settings
from pipelines.search.handler import index_users, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.report import ReconcileReport
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


async def reconcile(
    pool: asyncpg.Pool, args: argparse.Namespace, max_rate: float | None = None
) -> ReconcileReport:
    options = SearchReconcileOptions(
        batch_size=args.batch_size, parallelism=args.parallelism, max_rate=max_rate
    )
    return await SearchReconciler(pool, PostgresSearchIndex(pool), options).run()


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


async def load_during_reconcile(
    pool: asyncpg.Pool,
    ids: Sequence[uuid.UUID],
    args: argparse.Namespace,
    rng: random.Random,
    max_rate: float | None = None,
) -> tuple[float, ReconcileReport]:
    stop = asyncio.Event()
    task = asyncio.create_task(indexing_load(pool, ids, stop, rng))
    report = await reconcile(pool, args, max_rate)
    stop.set()
    done, elapsed = await task
    return done / elapsed, report


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
        alone = await reconcile(pool, args)
        print(
            f"reconcile alone:  {alone.checked:,} users in {alone.duration:.2f} s ="
            f" {alone.users_per_second:,.0f} users/s (drift {alone.drift:,},"
            f" repaired {alone.repaired:,})"
        )
        base = await load_for(pool, ids, args.load_seconds, rng)
        during, report = await load_during_reconcile(pool, ids, args, rng)
        paced, paced_report = await load_during_reconcile(pool, ids, args, rng, args.max_rate)
    finally:
        await pool.close()
        if not args.keep:
            await drop_database(url)
    print(f"indexing load alone: {base:,.0f} updates/s")
    for label, rate, run in (
        ("unthrottled", during, report),
        (f"--max-rate {args.max_rate:,.0f}", paced, paced_report),
    ):
        slowdown = 1 - rate / base if base else 0.0
        print(
            f"during reconcile ({label}): load {rate:,.0f} updates/s (slowdown {slowdown:.0%}),"
            f" reconcile {run.users_per_second:,.0f} users/s"
        )
    ok = alone.users_per_second >= 5000 and alone.repaired == drift
    print(f"target >= 5,000 users/s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--max-rate", type=float, default=2000.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the bench database afterwards.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
