"""Benchmark of the search indexing stage against a raw bulk upsert of the same documents.

Seeds N generated profiles (users, profiles, work history, educations, skills)
with COPY into a separate database (`socialpipe_bench`, recreated each run),
then measures in the same run, on the same backend (PostgreSQL):

* reference: a raw bulk upsert of the pre-built documents into an empty copy
  of the documents table, in the same chunks and with the same parallelism;
* pipeline: keyset pages of user ids → one aggregation query per batch →
  pure transform + required-field check → versioned bulk upsert into the
  empty live table (`index_users`, the worker's very stage).

It prints docs/s of both and the ratio pipeline/reference.

    python -m bench.search_index [--profiles 200000] [--batch-size 1000] [--parallelism 2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date

import asyncpg

from config.settings import load_settings
from pipelines.search.handler import build_documents, index_users, pool_loader
from pipelines.search.postgres import TABLE, PostgresSearchIndex
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade
from store.profiles import load_profiles, profile_ids_after
from transforms.search_document import UserSearchDocument

BENCH_DB = "socialpipe_bench"
RAW_TABLE = "search_documents_raw"
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Lin"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
TITLES = ["Engineer", "Senior Engineer", "Staff Engineer", "Manager", "Designer", "Analyst"]
COMPANIES = [f"Company {i}" for i in range(500)]
SKILLS = [f"Skill {i}" for i in range(300)]
SCHOOLS = [f"University {i}" for i in range(100)]
CHILD_TABLES = ("work_experiences", "educations", "skills")


async def seed(pool: asyncpg.Pool, count: int, rng: random.Random) -> None:
    """COPY `count` users with profiles and child rows, version triggers off meanwhile."""
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
    users = [(u, f"{u}@bench.example") for u in ids]
    profiles = [
        (
            u,
            f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            f"{rng.choice(TITLES)} at somewhere",
            "Berlin",
            "private" if i % 10 == 0 else "public",
        )
        for i, u in enumerate(ids)
    ]
    jobs = [
        (uuid.uuid4(), u, rng.choice(COMPANIES), rng.choice(TITLES), date(2010 + j * 5, 1, 1))
        for u in ids
        for j in range(2)
    ]
    schools = [(uuid.uuid4(), u, rng.choice(SCHOOLS)) for u in ids]
    skills = [(uuid.uuid4(), u, s) for u in ids for s in rng.sample(SKILLS, 4)]
    async with pool.acquire() as conn:
        for table in CHILD_TABLES:
            # Bench data only: one version per profile is enough, not one per row.
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        await conn.copy_records_to_table("users", records=users, columns=["id", "email"])
        await conn.copy_records_to_table(
            "user_profiles",
            records=profiles,
            columns=["user_id", "full_name", "headline", "location", "visibility"],
        )
        await conn.copy_records_to_table(
            "work_experiences",
            records=jobs,
            columns=["id", "user_id", "company_name", "title", "start_date"],
        )
        await conn.copy_records_to_table(
            "educations", records=schools, columns=["id", "user_id", "school_name"]
        )
        await conn.copy_records_to_table(
            "skills", records=skills, columns=["id", "user_id", "skill_name"]
        )
        for table in CHILD_TABLES:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        await conn.execute("ANALYZE")


async def id_batches(pool: asyncpg.Pool, size: int) -> list[list[uuid.UUID]]:
    batches: list[list[uuid.UUID]] = []
    after: uuid.UUID | None = None
    while ids := await profile_ids_after(pool, after, size):
        batches.append(ids)
        after = ids[-1]
    return batches


async def prebuild(
    pool: asyncpg.Pool, batches: Sequence[Sequence[uuid.UUID]]
) -> list[list[UserSearchDocument]]:
    built = []
    for ids in batches:
        docs, _ = build_documents((await load_profiles(pool, ids)).profiles)
        built.append(docs)
    return built


async def timed(jobs: Sequence[Callable[[], Awaitable[object]]], parallelism: int) -> float:
    """Run `jobs` with at most `parallelism` at once; return the elapsed seconds."""
    queue = list(reversed(jobs))

    async def runner() -> None:
        while queue:
            await queue.pop()()

    start = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(parallelism)))
    return time.perf_counter() - start


async def fresh_tables(pool: asyncpg.Pool) -> None:
    await pool.execute(f"TRUNCATE {TABLE}")
    await pool.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    await pool.execute(f"CREATE TABLE {RAW_TABLE} (LIKE {TABLE} INCLUDING ALL)")
    await pool.execute("CHECKPOINT")


async def main(args: argparse.Namespace) -> int:
    url = with_database(load_settings().database_url, BENCH_DB)
    await drop_database(url)
    await upgrade(url)
    pool = await create_pool(url, max_size=args.parallelism + 2)
    try:
        t0 = time.perf_counter()
        await seed(pool, args.profiles, random.Random(args.seed))
        print(f"seeded {args.profiles} profiles in {time.perf_counter() - t0:.1f} s")
        batches = await id_batches(pool, args.batch_size)
        docs = await prebuild(pool, batches)
        total = sum(len(d) for d in docs)
        await fresh_tables(pool)
        raw = PostgresSearchIndex(pool, table=RAW_TABLE, max_count=args.batch_size)
        ref_s = await timed([functools.partial(raw.write, d) for d in docs], args.parallelism)
        live = PostgresSearchIndex(pool, max_count=args.batch_size)
        load = pool_loader(pool)
        pipe_s = await timed(
            [functools.partial(index_users, load, live, ids) for ids in batches], args.parallelism
        )
        written = await pool.fetchval(f"SELECT count(*) FROM {TABLE}")
    finally:
        await pool.close()
        if not args.keep:
            await drop_database(url)
    ref_rate, pipe_rate = total / ref_s, total / pipe_s
    ratio = pipe_rate / ref_rate
    print(f"reference raw bulk upsert: {total} docs in {ref_s:.2f} s = {ref_rate:,.0f} docs/s")
    print(f"pipeline indexing stage:   {written} docs in {pipe_s:.2f} s = {pipe_rate:,.0f} docs/s")
    print(f"ratio pipeline/reference:  {ratio:.2f} (target >= 0.5; docs/s target >= 5,000)")
    return 0 if written == total and ratio >= 0.5 and pipe_rate >= 5000 else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.search_index", description=__doc__)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the bench database afterwards.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
