"""CPU per event of a whole worker process, against the bare SQS receive/delete loop.

Under load on a small machine every process competes for the same cores, so
what decides how much load fits is the CPU each event costs, not its latency
on an idle machine. This benchmark measures that cost, which (unlike wall time)
hardly moves when the machine is busy:

* a graph is seeded by COPY into its own database (`socialpipe_bench_worker`,
  or `--database`);
* fauxqs (or moto) runs on loopback with the real topic and queues, and a
  redis-server of its own (`--redis env`: REDIS_URL's server instead);
* reference: N messages are sent to the queue, then received (10 at a time)
  and deleted in batches by a bare aiobotocore loop in this process; its CPU
  time per message is the floor any SQS consumer in Python pays;
* Redis floor (feed): after the run, the same posts are pushed again to the
  same emptied feeds as plain pipelined LPUSHes, one pipeline per post, no
  script, no de-duplication, no trim: the least Redis can spend on the pushes
  the contract asks for (one list entry per recipient), per post;
* pipeline: N real events (`PostCreated` of random authors, or
  `UserProfileUpdated` with the profiles' new versions) are queued, then
  `socialpipe worker feed|search --burst` runs until the queue is empty; its
  CPU (from the child's rusage, minus a run on an empty queue, which is the
  start-up cost) and the CPU PostgreSQL (the backends of its database) and
  Redis spent meanwhile, per event.

    python -m bench.worker_cpu --pipeline search --events 5000
    python -m bench.worker_cpu --pipeline feed --events 2000 --users 20000

The ratios printed are the worker's CPU per event, and worker + PostgreSQL + Redis,
÷ the reference's CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import redis.asyncio as aioredis

from config.clients import open_redis, open_sns, open_sqs
from config.settings import Settings, load_settings
from config.worker import pipeline_queue
from consumers.topology import ensure_topology
from contracts.events import Envelope, PostCreated, UserProfileUpdated, new_envelope, utcnow
from contracts.keys import feed_key
from loadtest import emulator as emu
from loadtest.graph import LOADTEST_SHAPE, build_graph, holds_graph, reset_tables, seed_graph
from loadtest.processes import settings_env, socialpipe_command
from loadtest.runner import forget_users
from store.db import create_pool, with_database
from store.migrate import upgrade

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

    from bench.scaling import BackendMeter

BENCH_DB = "socialpipe_bench_worker"
SEND_BATCH = 10


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def redis_cpu(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def send_all(sqs: SQSClient, url: str, bodies: Sequence[str]) -> None:
    chunks = [bodies[i : i + SEND_BATCH] for i in range(0, len(bodies), SEND_BATCH)]
    sem = asyncio.Semaphore(16)

    async def one(chunk: Sequence[str]) -> None:
        async with sem:
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            got = await sqs.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]
            if got.get("Failed"):
                raise RuntimeError(f"send failed: {got['Failed'][:1]}")

    await asyncio.gather(*(one(c) for c in chunks))


async def bare_consume(sqs: SQSClient, url: str, count: int) -> float:
    """Receive and delete `count` messages with no handler; returns this process's CPU seconds."""
    began, seen = time.process_time(), 0
    while seen < count:
        got = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        messages = got.get("Messages", [])
        seen += len(messages)
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[arg-type]
    return time.process_time() - began


async def post_events(pool: asyncpg.Pool, authors: Sequence[Any], count: int) -> list[Envelope]:
    rng, now = random.Random(11), utcnow()
    rows, envelopes = [], []
    for i in range(count):
        author, post_id = rng.choice(authors), uuid.uuid4()
        rows.append((post_id, author, f"Bench post {i}", now))
        envelopes.append(
            new_envelope(PostCreated(post_id=post_id, author_id=author, created_at=now))
        )
    await pool.copy_records_to_table(
        "posts", records=rows, columns=["id", "author_id", "text_content", "created_at"]
    )
    return envelopes


async def profile_events(pool: asyncpg.Pool, users: Sequence[Any], count: int) -> list[Envelope]:
    chosen = random.Random(13).sample(list(users), min(count, len(users)))
    rows = await pool.fetch(
        "UPDATE user_profiles SET headline = headline || '.', updated_at = now()"
        " WHERE user_id = ANY($1::uuid[]) RETURNING user_id, version, updated_at",
        chosen,
    )
    return [
        new_envelope(
            UserProfileUpdated(
                user_id=r["user_id"], updated_at=r["updated_at"], version=r["version"]
            )
        )
        for r in rows
    ]


def py_spy() -> str:
    """py-spy next to this Python (the venv's dev extra), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


FRIENDS_OF: Final = """
SELECT requester_id AS a, addressee_id AS b FROM connections
 WHERE status = 'accepted' AND (requester_id = ANY($1::uuid[]) OR addressee_id = ANY($1::uuid[]))
"""


async def redis_floor(
    pool: asyncpg.Pool, redis: aioredis.Redis, users: Sequence[Any], envelopes: Sequence[Envelope]
) -> tuple[float, int]:
    """Redis CPU seconds and pushes of the posts' fan-outs as bare pipelined LPUSHes."""
    posts = [e.payload for e in envelopes if isinstance(e.payload, PostCreated)]
    friends: dict[uuid.UUID, set[uuid.UUID]] = {p.author_id: set() for p in posts}
    for row in await pool.fetch(FRIENDS_OF, list(friends)):
        for me, other in ((row["a"], row["b"]), (row["b"], row["a"])):
            if me in friends and other != me:
                friends[me].add(other)
    await forget_users(redis, tuple(users))
    pushes, before = 0, await redis_cpu(redis)
    for post in posts:
        async with redis.pipeline(transaction=False) as pipe:
            for friend in friends[post.author_id]:
                pipe.lpush(feed_key(friend), str(post.post_id))
            await pipe.execute()
        pushes += len(friends[post.author_id])
    return await redis_cpu(redis) - before, pushes


async def run_worker(
    settings: Settings, pipeline: str, meter: BackendMeter | None = None, profile: str = ""
) -> tuple[float, float]:
    """`socialpipe worker PIPELINE --burst`; returns (CPU seconds of the child, wall seconds)."""
    env = settings_env(settings, METRICS_PORT="0", LOG_LEVEL="WARNING")
    spy = [py_spy(), "record", "-r", "250", "-f", "raw", "-o", profile, "--"] if profile else []
    before, began = children_cpu(), time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *spy, socialpipe_command(), "worker", pipeline, "--burst", env=env
    )
    while meter is not None and proc.returncode is None:
        meter.sample()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
    if await proc.wait() != 0:
        raise RuntimeError(f"worker {pipeline} exited with {proc.returncode}")
    return children_cpu() - before, time.monotonic() - began


async def measure(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from bench.scaling import BackendMeter  # bench.scaling imports this module

    async with AsyncExitStack() as stack:
        await upgrade(settings.database_url)
        pool = await create_pool(settings.database_url, min_size=1, max_size=4)
        stack.push_async_callback(pool.close)
        redis = await open_redis(stack, settings)
        graph = build_graph(args.users, seed=7, shape=LOADTEST_SHAPE)
        if not await holds_graph(pool, graph):
            await reset_tables(pool)
            await seed_graph(pool, graph)
        sqs = await open_sqs(stack, settings, pool=16)
        sns = await open_sns(stack, settings)
        topology = await ensure_topology(sqs, sns, settings)
        url = topology.queue_url(pipeline_queue(settings, args.pipeline))
        await send_all(sqs, url, ["{}"] * args.events)
        reference = await bare_consume(sqs, url, args.events)
        startup, _ = await run_worker(settings, args.pipeline)
        await forget_users(redis, graph.users)  # cold caches, empty feeds: runs compare
        make = post_events if args.pipeline == "feed" else profile_events
        envelopes = await make(pool, graph.users, args.events)
        await send_all(sqs, url, [e.to_json().decode() for e in envelopes])
        meter, redis0 = BackendMeter(args.database), await redis_cpu(redis)
        cpu, wall = await run_worker(settings, args.pipeline, meter, args.py_spy)
        pg, rd = meter.seconds(), await redis_cpu(redis) - redis0
        floor, pushes = (
            await redis_floor(pool, redis, graph.users, envelopes)
            if args.pipeline == "feed"
            else (0.0, 0)
        )
    n = len(envelopes)
    return {
        "pipeline": args.pipeline,
        "events": n,
        "wall_s": round(wall, 2),
        "events_per_s": round(n / wall, 1),
        "worker_ms": round((cpu - startup) * 1000 / n, 3),
        "postgres_ms": round(pg * 1000 / n, 3),
        "redis_ms": round(rd * 1000 / n, 3),
        "reference_ms": round(reference * 1000 / args.events, 3),
        "all_ms": round((cpu - startup + pg + rd) * 1000 / n, 3),
        "startup_s": round(startup, 2),
        "redis_floor_ms": round(floor * 1000 / n, 3),
        "pushes_per_event": round(pushes / n, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_cpu", description=__doc__)
    parser.add_argument("--pipeline", choices=["feed", "search"], default="search")
    parser.add_argument("--events", type=int, default=5000, help="events to queue (default 5000)")
    parser.add_argument("--users", type=int, default=10_000, help="graph size (default 10000)")
    parser.add_argument("--emulator", choices=["fauxqs", "moto"], default="fauxqs")
    parser.add_argument(
        "--py-spy", default="", metavar="FILE", help="profile the measured worker run into FILE"
    )
    parser.add_argument(
        "--database",
        default=BENCH_DB,
        help=f"the benchmark's own database, seeded if needed (default {BENCH_DB});"
        " only its backends' CPU is counted",
    )
    parser.add_argument(
        "--redis",
        choices=["own", "env"],
        default="own",
        help="own: a redis-server started for the run, so its CPU is the pipeline's alone"
        " (default); env: the server of REDIS_URL",
    )
    args = parser.parse_args(argv)
    from bench.scaling import own_redis  # bench.scaling imports this module

    base = load_settings()
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(emu.emulator(args.emulator))
        update: dict[str, Any] = {
            "database_url": with_database(base.database_url, args.database),
            "aws_endpoint_url": endpoint,
            "receive_wait_seconds": 1,
        }
        if args.redis == "own":
            update["redis_url"], _ = stack.enter_context(own_redis())
        result = asyncio.run(measure(args, base.model_copy(update=update)))
    print(
        f"{result['pipeline']}: {result['events']} events in {result['wall_s']} s "
        f"({result['events_per_s']}/s); CPU per event: worker {result['worker_ms']} ms, "
        f"PostgreSQL {result['postgres_ms']} ms, Redis {result['redis_ms']} ms; "
        f"bare receive+delete {result['reference_ms']} ms/message"
    )
    print(
        f"ratio worker/reference: {result['worker_ms'] / result['reference_ms']:.2f}; "
        f"worker + PostgreSQL + Redis/reference: {result['all_ms'] / result['reference_ms']:.2f}"
    )
    if result["pushes_per_event"]:
        print(
            f"Redis floor: {result['pushes_per_event']} bare LPUSHes per post cost Redis "
            f"{result['redis_floor_ms']} ms: "
            f"{result['redis_floor_ms'] / result['reference_ms']:.2f}x the reference alone"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
