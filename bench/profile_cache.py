"""The `profile` query with the profile cache cold and hot, in the same run.

Seeds `--users` profiles (each with 3 jobs, 2 schools and 8 skills; one in five
private) with COPY into a database of its own (`socialpipe_bench_profile`,
recreated each run), builds the API with its composition root (`config/api.py`,
in process, over HTTP through ASGI: GraphQL parsing and validation included)
and, for each of `--sample` profiles in turn, one request at a time:

1. drops the profile's cache entry;
2. cold: asks for it: the read misses, loads the profile from PostgreSQL (four
   statements) and caches it;
3. hot: asks for it again at once: the read is served from Redis.

Then the same pairs calling `Services.profile` directly, without HTTP and
GraphQL: the part of the query the cache changes. A cold read and its hot twin
are milliseconds apart, so a shared machine's load drifts alike for both.

The viewer is a user connected to nobody, so a private profile costs the
connection check on every read, hot or cold. It prints P50/P95/mean of each
kind, the ratios cold / hot of the P50s (the headline figures) and one JSON line.

    python -m bench.profile_cache [--users 5000] [--sample 1000] [--db 12]

It uses the Redis server of `REDIS_URL` with database `--db` and deletes only
the profile cache's keys there, before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import date
from typing import Any, Final

import httpx
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher

from api.auth import Passwords, Tokens
from api.services import Services
from api.uow import PgUnitsOfWork
from config.api import build_api, profile_cache
from config.clients import no_client_retries
from config.logging import configure_logging
from config.settings import load_settings
from contracts.keys import profile_cache_key
from pipelines.notifications.redis_counters import RedisUnreadCounters
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade

BENCH_DB: Final = "socialpipe_bench_profile"
SECRET: Final = "bench-secret-" + "x" * 40
QUERY: Final = """query($u: ID!) { profile(userId: $u) {
  fullName headline location visibility
  workExperience { companyName title startDate endDate }
  education { schoolName degree }
  skills { skillName } } }"""


async def seed(pool: Any, users: int) -> list[uuid.UUID]:
    """`users` profiles with their histories, by COPY; returns their ids."""
    rng = random.Random(7)
    ids = [uuid.uuid4() for _ in range(users + 1)]
    day = date(2015, 1, 1)
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"{u.hex}@example.com") for u in ids],
            columns=["id", "email"],
        )
        await conn.copy_records_to_table(
            "user_profiles",
            records=[
                (
                    u,
                    f"Person {i}",
                    f"Engineer at Company {i % 97}",
                    "London",
                    "private" if rng.random() < 0.2 else "public",
                )
                for i, u in enumerate(ids)
            ],
            columns=["user_id", "full_name", "headline", "location", "visibility"],
        )
        await conn.copy_records_to_table(
            "work_experiences",
            records=[(u, f"Company {j}", "Engineer", day, None) for u in ids for j in range(3)],
            columns=["user_id", "company_name", "title", "start_date", "end_date"],
        )
        await conn.copy_records_to_table(
            "educations",
            records=[(u, f"School {j}", "BSc") for u in ids for j in range(2)],
            columns=["user_id", "school_name", "degree"],
        )
        await conn.copy_records_to_table(
            "skills",
            records=[(u, f"Skill {j}") for u in ids for j in range(8)],
            columns=["user_id", "skill_name"],
        )
        await conn.execute("ANALYZE")
    return ids


async def drop_cached(redis: Any) -> int:
    """Delete the profile cache's keys (and nothing else) from the bench database."""
    dropped = 0
    async for key in redis.scan_iter(match="profile:*", count=1000):
        dropped += await redis.delete(key)
    return dropped


Read = Callable[[uuid.UUID], Awaitable[object]]


async def paired_pass(
    redis: Any, read: Read, users: Sequence[uuid.UUID]
) -> tuple[list[float], list[float]]:
    """For each user: drop the entry, read (cold), read again (hot). Milliseconds each;
    a cold read and its hot one are a few milliseconds apart, so the machine's load
    drifts alike for both."""
    cold: list[float] = []
    hot: list[float] = []
    for user in users:
        await redis.delete(profile_cache_key(user))
        for into in (cold, hot):
            started = time.perf_counter()
            await read(user)
            into.append((time.perf_counter() - started) * 1000)
    return cold, hot


def query_reader(client: httpx.AsyncClient, token: str) -> Read:
    """The `profile` GraphQL query over HTTP (ASGI, in process)."""
    headers = {"Authorization": f"Bearer {token}"}

    async def read(user: uuid.UUID) -> object:
        variables = {"u": str(user)}
        r = await client.post(
            "/graphql", json={"query": QUERY, "variables": variables}, headers=headers
        )
        if r.status_code != 200 or "errors" in r.json():
            raise RuntimeError(f"profile query failed: {r.status_code} {r.text[:200]}")
        return r

    return read


def summary(ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    database_url = with_database(base.database_url, BENCH_DB)
    redis_url = base.redis_url.rsplit("/", 1)[0] + f"/{args.db}"
    settings = load_settings(
        database_url=database_url, redis_url=redis_url, api_token_secret=SECRET, metrics_port=0
    )
    await drop_database(database_url)
    await upgrade(database_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drop_database, database_url)
        pool = await create_pool(database_url, max_size=8)
        stack.push_async_callback(pool.close)
        redis = redis_asyncio.Redis.from_url(redis_url, retry=no_client_retries())
        stack.push_async_callback(redis.aclose)
        stack.push_async_callback(drop_cached, redis)
        await drop_cached(redis)
        ids = await seed(pool, args.users)
        viewer, profiles = ids[0], ids[1:]
        app = await build_api(
            stack,
            settings,
            pool=pool,
            redis=redis,
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        )
        token = Tokens(SECRET, 3600).issue(viewer)
        services = Services(
            PgUnitsOfWork(pool),
            redis,
            None,
            RedisUnreadCounters(redis),
            Passwords(),
            Tokens(SECRET, 3600),
            profiles=profile_cache(settings, redis),
        )
        query = query_reader(client, token)

        async def service(user: uuid.UUID) -> object:
            return await services.profile(viewer, user)

        await paired_pass(redis, query, profiles[: min(50, len(profiles))])  # warm-up
        times: dict[str, list[float]] = {}
        for name, read in (("", query), ("service_", service)):
            cold, hot = await paired_pass(redis, read, profiles[: args.sample])
            times[f"{name}cold"], times[f"{name}hot"] = cold, hot
    result: dict[str, Any] = {"users": args.users, "reads": len(times["cold"])}
    result |= {f"{name}_ms": summary(ms) for name, ms in times.items()}
    for prefix in ("", "service_"):
        cold, hot = result[f"{prefix}cold_ms"]["p50"], result[f"{prefix}hot_ms"]["p50"]
        result[f"{prefix}ratio_cold_to_hot_p50"] = round(cold / hot, 2)
    return result


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_cache",
        description="Latency of the profile query with the profile cache cold and hot, same run.",
    )
    parser.add_argument("--users", type=int, default=5000, help="profiles seeded (default 5000)")
    parser.add_argument(
        "--sample", type=int, default=1000, help="profiles read cold then hot (default 1000)"
    )
    parser.add_argument("--db", type=int, default=12, help="Redis database to use (default 12)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    configure_logging("bench", "WARNING")
    result = asyncio.run(main_async(args))
    for name in ("cold", "hot", "service_cold", "service_hot"):
        s = result[f"{name}_ms"]
        print(f"{name:>12}: P50 {s['p50']:.2f} ms  P95 {s['p95']:.2f} ms  mean {s['mean']:.2f} ms")
    reads = result["reads"]
    print(f"profile query, cold / hot (P50): {result['ratio_cold_to_hot_p50']:.2f}")
    print(f"Services.profile, cold / hot (P50): {result['service_ratio_cold_to_hot_p50']:.2f}")
    print(f"({reads} reads of each kind)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
