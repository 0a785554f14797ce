"""Load test of the API's limits: a normal client's P95 alone and beside an abusive one.

Seeds N profiles and their search documents with COPY into a database of its
own (`socialpipe_bench_api`, recreated each run), starts the real `socialpipe
api` process on a free loopback port, then:

1. finds the worst allowed query: each candidate (`CANDIDATES`, each at the
   limits of docs/api-limits.md: cost 20, at most 10 aliases, the longest
   search text, 100 hits a page) is timed alone and the slowest is kept;
2. idle: a normal client asks for one profile `--rate` times a second on an
   open-loop schedule; its latency counts from each request's scheduled time,
   so waiting for the server is included;
3. abused: the same, while one client (another user) sends the worst allowed
   query back to back (`--abusers` of them, 1 by default).

Idle and abused windows alternate (`--rounds`, `--duration` seconds of each in
all), so the machine's other load drifts over both phases alike.

It prints both P50/P95s, the ratio abused/idle P95 against the target (at
most 2), the abusive client's requests and statuses, and one JSON line.

    python -m bench.api_abuse [--users 10000] [--duration 15] [--rate 20] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from api.auth import Tokens
from bench.search_index import FIRST, LAST, seed
from config.settings import Settings, load_settings
from loadtest.processes import ProcessGroup
from pipelines.search.handler import index_users, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade

BENCH_DB: Final = "socialpipe_bench_api"
TARGET_RATIO: Final = 2.0
NORMAL: Final = "query($u: ID!) { profile(userId: $u) { fullName headline } }"
# Two names most documents share a trigram with: the search that scans and ranks the
# most documents (the longest text allowed, ten names, matches almost none).
SEARCH_TEXT: Final = f"{FIRST[0]} {LAST[0]}"
LONG_TEXT: Final = " ".join((LAST + FIRST)[:10])[:100]
HIT = "userId fullName headline"
PROFILE = "fullName headline workExperience { companyName title } skills { skillName }"


def _search(alias: str, text: str = SEARCH_TEXT) -> str:
    return f'{alias}searchUsers(query: "{text}", first: 100) {{ {HIT} }}'


def _profiles(count: int, user: str) -> str:
    return " ".join(f'p{i}: profile(userId: "{user}") {{ {PROFILE} }}' for i in range(count))


def candidates(user: str) -> dict[str, str]:
    """Queries at the limits (cost 20, at most 10 aliases), by name."""
    searches = " ".join(_search(f"s{i}: ") for i in range(4)) + " " + _search("")
    lists = "feed(first: 100) { items { id } } notifications(first: 100) { id }"
    longest = " ".join(_search(f"s{i}: ", LONG_TEXT) for i in range(5))
    return {
        "5 searches": "{ " + searches + " }",
        "5 searches, longest text": "{ " + longest + " }",
        "4 searches + 4 profiles": "{ "
        + " ".join(_search(f"s{i}: ") for i in range(3))
        + f" {_search('')} {_profiles(4, user)} }}",
        "10 profiles + pages": "{ " + f"{_profiles(10, user)} me {{ id }} {lists} }}",
    }


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str) -> int:
    r = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    return r.status_code


async def normal_client(
    client: httpx.AsyncClient, users: list[uuid.UUID], token: str, rate: float, duration: float
) -> Run:
    """Open loop: request i is due at start + i/rate, latency counts from then."""
    run, rng = Run(), random.Random(7)
    start = time.perf_counter()

    async def one(due: float) -> None:
        status = await post(client, NORMAL, {"u": str(rng.choice(users))}, token)
        run.latencies.append(time.perf_counter() - due)
        run.statuses[status] += 1

    tasks = []
    for i in range(int(duration * rate)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return run


async def abusive_client(
    client: httpx.AsyncClient, query: str, token: str, stop: asyncio.Event
) -> Run:
    run = Run()
    while not stop.is_set():
        t0 = time.perf_counter()
        run.statuses[await post(client, query, {}, token)] += 1
        run.latencies.append(time.perf_counter() - t0)
    return run


async def worst_query(
    client: httpx.AsyncClient, user: str, tokens: list[str], runs: int
) -> tuple[str, float]:
    """The candidate with the highest median time alone (`runs` runs each).

    Each candidate runs as a user of its own: a user's searches are paced to a
    share of the search time, which would otherwise slow the next candidate.
    """
    timed: dict[str, float] = {}
    for (name, query), token in zip(candidates(user).items(), tokens, strict=False):
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            status = await post(client, query, {}, token)
            if status not in (200, 429):
                raise SystemExit(f"candidate {name!r} answered {status}: is it over a limit?")
            samples.append(time.perf_counter() - t0)
        timed[name] = statistics.median(samples)
        print(f"  candidate {name:26s} median {timed[name] * 1000:8.1f} ms alone")
    name = max(timed, key=lambda n: timed[n])
    return name, timed[name]


async def prepare(settings: Settings, users: int) -> list[uuid.UUID]:
    await drop_database(settings.database_url)
    await upgrade(settings.database_url)
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        await seed(pool, users, random.Random(1))
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM users ORDER BY id")]
        index, load = PostgresSearchIndex(pool), pool_loader(pool)
        for i in range(0, len(ids), 1000):
            await index_users(load, index, ids[i : i + 1000])
        await pool.execute("ANALYZE")
        return ids
    finally:
        await pool.close()


async def measure(
    args: argparse.Namespace, settings: Settings, ids: list[uuid.UUID]
) -> dict[str, Any]:
    group = ProcessGroup(settings, Path(tempfile.mkdtemp(prefix="api-abuse-")))
    url = group.add_api().removesuffix("/graphql")
    issue = Tokens(settings.api_token_secret, 3600).issue
    normal, abuser, *others = [issue(u) for u in ids[:8]]
    await group.start()
    try:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            for _ in range(20):  # warm the pool and the plans
                await post(client, NORMAL, {"u": str(ids[1])}, normal)
            name, alone = await worst_query(client, str(ids[1]), others, args.samples)
            query = candidates(str(ids[1]))[name]
            idle, abused, abuse_runs = Run(), Run(), []
            window = args.duration / args.rounds
            # Alternating windows: the machine's other load drifts over both alike.
            for _ in range(args.rounds):
                idle.add(await normal_client(client, ids, normal, args.rate, window))
                stop = asyncio.Event()
                abusers = [
                    asyncio.create_task(abusive_client(client, query, abuser, stop))
                    for _ in range(args.abusers)
                ]
                abused.add(await normal_client(client, ids, normal, args.rate, window))
                stop.set()
                abuse_runs += await asyncio.gather(*abusers)
    finally:
        await group.stop(grace=10)
    abuse = Run()
    for r in abuse_runs:
        abuse.add(r)
    return {
        "users": len(ids),
        "worst_query": name,
        "worst_query_alone_ms": round(alone * 1000, 1),
        "idle_p50_ms": round(idle.p(0.5) * 1000, 2),
        "idle_p95_ms": round(idle.p(0.95) * 1000, 2),
        "abused_p50_ms": round(abused.p(0.5) * 1000, 2),
        "abused_p95_ms": round(abused.p(0.95) * 1000, 2),
        "ratio": round(abused.p(0.95) / idle.p(0.95), 2) if idle.latencies else None,
        "normal_requests": len(idle.latencies) + len(abused.latencies),
        "normal_statuses": dict(idle.statuses + abused.statuses),
        "abusive_requests": len(abuse.latencies),
        "abusive_statuses": dict(abuse.statuses),
        "abusive_p50_ms": round(abuse.p(0.5) * 1000, 1),
        "api_error_lines": sum(group.error_lines().values()),
    }


async def main_async(args: argparse.Namespace) -> int:
    base = load_settings()
    settings = base.model_copy(
        update={
            "database_url": with_database(base.database_url, args.database),
            "api_token_secret": base.api_token_secret or "bench-" + "k" * 40,
            "log_level": "WARNING",
        }
    )
    t0 = time.perf_counter()
    ids = await prepare(settings, args.users)
    print(f"seeded and indexed {len(ids)} profiles in {time.perf_counter() - t0:.1f} s")
    try:
        report = await measure(args, settings, ids)
    finally:
        if not args.keep:
            await drop_database(settings.database_url)
    met = report["ratio"] is not None and report["ratio"] <= TARGET_RATIO
    r = report
    verdict = "met" if met else "MISSED"
    print(
        f"normal query P50/P95 alone:  {r['idle_p50_ms']:.2f} / {r['idle_p95_ms']:.2f} ms\n"
        f"normal query P50/P95 abused: {r['abused_p50_ms']:.2f} / {r['abused_p95_ms']:.2f} ms\n"
        f"ratio of the P95s: {r['ratio']} (target <= {TARGET_RATIO}: {verdict})\n"
        f"abusive client: {r['abusive_requests']} x {r['worst_query']!r}"
        f" (P50 {r['abusive_p50_ms']} ms), statuses {r['abusive_statuses']}"
    )
    print(json.dumps(report))
    return 1 if args.check and not met else 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_abuse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=10_000, help="profiles to seed and index")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating idle/abused windows per phase"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="normal requests per second")
    parser.add_argument("--samples", type=int, default=5, help="timed runs per candidate")
    parser.add_argument("--abusers", type=int, default=1, help="abusive clients at once")
    parser.add_argument("--database", default=BENCH_DB, help="database to (re)create")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
