"""Events per worker CPU-second with 1, 2, 4… worker processes on one backlog.

Throughput is expected to grow nearly linearly with consumer processes; what
can be checked on one machine is whether each added worker keeps the CPU cost
of an event. For each worker count N:

* the queue is topped up to `--backlog` real `PostCreated` events (posts of
  random authors on the seeded load-test graph), more than any N settles in
  the run, and the graph users' feeds and connection caches are emptied, so
  every run starts from the same state;
* N `socialpipe worker feed` processes start together (no `--burst`); after
  `--warmup` seconds the window opens: the queue depth (visible + in flight),
  the workers' CPU (utime + stime of each worker process and its children,
  from /proc/<pid>/stat), PostgreSQL's (every `postgres` process), Redis's
  (`INFO cpu`), the emulator's (this process's other children) and the whole
  machine's (/proc/stat) are read, and again `--window` seconds later;
* the workers are stopped with SIGTERM (they drain what they hold and exit).

Events settled = the drop in queue depth over the window. Reported per N:
events/s, events per worker CPU-second, and efficiency = that figure at N ÷
at the first (smallest) N; also every component's CPU share of the machine.

    python -m bench.scaling --workers 1,2,4
    python -m bench.scaling --workers 1,2 --backlog 8000 --window 10

Every process shares the machine's cores, so once the workers, PostgreSQL,
Redis and the emulator together use all of them, an added worker takes CPU
from the others: the output says how many cores there are and how busy they were.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis

from bench.worker_cpu import post_events, redis_cpu, send_all
from config.clients import open_redis, open_sns, open_sqs
from config.settings import Settings, load_settings
from config.worker import pipeline_queue
from consumers.topology import ensure_topology
from loadtest import emulator as emu
from loadtest.graph import (
    LOADTEST_SHAPE,
    SocialGraph,
    build_graph,
    holds_graph,
    reset_tables,
    seed_graph,
)
from loadtest.processes import settings_env, socialpipe_command
from loadtest.redis_binaries import find_redis_binary
from loadtest.runner import forget_users
from store.db import create_pool, database_name, with_database
from store.migrate import upgrade

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

BENCH_DB = "socialpipe_bench_scaling"
SAMPLE_SECONDS = 0.25
TARGET_EFFICIENCY = 0.85
READY_TIMEOUT = 60.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime ticks) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def database_backends(database: str) -> set[int]:
    """PostgreSQL processes serving `database` (their titles name it)."""
    pids = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            pids.add(int(name))
    return pids


class BackendMeter:
    """CPU of one database's PostgreSQL backends over a span, sampled often.

    Other databases on the same server (other work on the machine) are left
    out; the server's shared processes (WAL writer, checkpointer) are too.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.sample()
        self.first = dict(self.last)

    def sample(self) -> None:
        for pid in database_backends(self.database):
            got = _stat(pid)
            if got is not None:
                self.last[pid] = got[1]

    def seconds(self) -> float:
        spent = sum(t - self.first.get(pid, 0) for pid, t in self.last.items())
        return spent / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def own_redis() -> Iterator[tuple[str, int]]:
    """A throwaway `redis-server` on a free loopback port: (URL, pid)."""
    port = emu.free_port()
    proc = subprocess.Popen(
        [find_redis_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start (is it on the PATH?)")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def preemptions(pids: set[int]) -> int:
    """Involuntary context switches of the given processes so far (taken off a core)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def process_table() -> dict[int, tuple[int, int]]:
    """Every process on the machine: pid -> (parent pid, CPU ticks)."""
    table = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        got = _stat(int(name))
        if got is not None:
            table[int(name)] = got
    return table


def tree_ticks(table: dict[int, tuple[int, int]], roots: set[int]) -> int:
    """CPU ticks of the given processes and all their descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo, seen = 0, [p for p in roots if p in table], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += table[pid][1]
        todo.extend(children.get(pid, []))
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class Snapshot:
    at: float
    depth: int
    workers: int  # ticks
    preempted: int  # the workers' involuntary context switches
    emulator: int  # ticks
    bench: float  # seconds, this process
    redis: float  # seconds
    machine_busy: int
    machine_total: int


async def queue_depth(sqs: SQSClient, url: str) -> int:
    """Messages not yet deleted: visible, in flight and delayed."""
    got = await sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )
    return sum(int(v) for v in got.get("Attributes", {}).values())


@dataclass
class Rig:
    """What every run measures against."""

    settings: Settings
    sqs: SQSClient
    url: str
    redis: aioredis.Redis
    redis_pids: set[int]  # a Redis started for the run: not the emulator


async def snapshot(rig: Rig, workers: set[int]) -> Snapshot:
    depth = await queue_depth(rig.sqs, rig.url)
    table = process_table()
    own = (
        {pid for pid, (parent, _) in table.items() if parent == os.getpid()}
        - workers
        - rig.redis_pids
    )
    busy, total = machine_ticks()
    return Snapshot(
        at=time.monotonic(),
        depth=depth,
        workers=tree_ticks(table, workers),
        preempted=preemptions(workers),
        emulator=tree_ticks(table, own),
        bench=time.process_time(),
        redis=await redis_cpu(rig.redis),
        machine_busy=busy,
        machine_total=total,
    )


async def top_up(
    pool: asyncpg.Pool, sqs: SQSClient, url: str, graph: SocialGraph, backlog: int
) -> int:
    """Queue new post events until the queue holds `backlog`; returns the depth."""
    missing = backlog - await queue_depth(sqs, url)
    if missing > 0:
        envelopes = await post_events(pool, graph.users, missing)
        await send_all(sqs, url, [e.to_json().decode() for e in envelopes])
    return await queue_depth(sqs, url)


async def wait_settled(sqs: SQSClient, url: str) -> None:
    """Until nothing is in flight (a stopped worker's leftovers have become visible)."""
    for _ in range(100):
        got = await sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )
        if int(got.get("Attributes", {}).get("ApproximateNumberOfMessagesNotVisible", 0)) == 0:
            return
        await asyncio.sleep(0.2)


async def until_ready(proc: asyncio.subprocess.Process, port: int) -> None:
    """Until the worker's /readyz answers 200 (consuming, its dependencies answering)."""
    deadline = time.monotonic() + READY_TIMEOUT

    def probe() -> bool:
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as got:
            return bool(got.status == 200)
        return False

    while not await asyncio.to_thread(probe):
        if proc.returncode is not None:
            raise RuntimeError(f"a feed worker exited with {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"a feed worker was not ready within {READY_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


async def run_workers(rig: Rig, count: int, warmup: float, window: float) -> dict[str, Any]:
    ports = [emu.free_port() for _ in range(count)]
    procs = [
        await asyncio.create_subprocess_exec(
            socialpipe_command(),
            "worker",
            "feed",
            env=settings_env(rig.settings, METRICS_PORT=str(port), LOG_LEVEL="WARNING"),
        )
        for port in ports
    ]
    pids = {p.pid for p in procs}
    try:
        await asyncio.gather(*(until_ready(p, port) for p, port in zip(procs, ports, strict=True)))
        await asyncio.sleep(warmup)
        for p in procs:
            if p.returncode is not None:
                raise RuntimeError(f"a feed worker exited early with {p.returncode}")
        meter = BackendMeter(database_name(rig.settings.database_url))
        first = await snapshot(rig, pids)
        deadline = first.at + window
        while time.monotonic() < deadline:
            await asyncio.sleep(min(SAMPLE_SECONDS, max(0.0, deadline - time.monotonic())))
            meter.sample()
        last = await snapshot(rig, pids)
        meter.sample()
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(p.wait() for p in procs))
    if any(codes):
        raise RuntimeError(f"feed workers exited with {codes}")
    tick = os.sysconf("SC_CLK_TCK")
    wall = last.at - first.at
    settled = first.depth - last.depth
    cpu = {
        "workers": (last.workers - first.workers) / tick,
        "postgres": meter.seconds(),
        "redis": last.redis - first.redis,
        "emulator": (last.emulator - first.emulator) / tick,
        "bench": last.bench - first.bench,
    }
    machine = (last.machine_busy - first.machine_busy) / tick
    machine_capacity = (last.machine_total - first.machine_total) / tick
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    return {
        "workers": count,
        "window_s": round(wall, 2),
        "events": settled,
        "backlog_left": last.depth,
        "drained": last.depth == 0,
        "events_per_s": round(settled / wall, 1),
        "worker_cpu_s": round(cpu["workers"], 2),
        "events_per_worker_cpu_s": round(settled / cpu["workers"], 1) if cpu["workers"] else 0.0,
        "preempted_per_1000_events": round((last.preempted - first.preempted) * 1000 / settled, 1)
        if settled
        else 0.0,
        "cpu_ms_per_event": {
            k: round(v * 1000 / settled, 3) if settled else 0.0 for k, v in cpu.items()
        },
        # cores' worth of CPU each part used on average over the window
        "cores_used": {k: round(v / wall, 2) for k, v in cpu.items()},
        "machine_busy": round(machine / machine_capacity, 3) if machine_capacity else 0.0,
        "load_average": round(os.getloadavg()[0], 2),
    }


async def measure(
    args: argparse.Namespace, settings: Settings, redis_pids: set[int]
) -> dict[str, Any]:
    runs = []
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
        url = topology.queue_url(pipeline_queue(settings, "feed"))
        rig = Rig(settings, sqs, url, redis, redis_pids)
        for count in args.workers:
            await wait_settled(sqs, url)
            await top_up(pool, sqs, url, graph, args.backlog)
            await forget_users(redis, graph.users)  # same start for every N
            runs.append(await run_workers(rig, count, args.warmup, args.window))
    base = runs[0]["events_per_worker_cpu_s"]
    base_rate = runs[0]["events_per_s"]
    for run in runs:
        run["efficiency"] = round(run["events_per_worker_cpu_s"] / base, 3) if base else 0.0
        run["speedup"] = round(run["events_per_s"] / base_rate, 2) if base_rate else 0.0
    return {
        "pipeline": "feed",
        "cores": os.cpu_count(),
        "users": args.users,
        "backlog": args.backlog,
        "warmup_s": args.warmup,
        "runs": runs,
    }


def where_lost(runs: list[dict[str, Any]], cores: int) -> list[str]:
    """Plain-language reasons for each run below the target efficiency."""
    notes, first = [], runs[0]
    for run in runs[1:]:
        if run["efficiency"] >= TARGET_EFFICIENCY:
            continue
        used, busy = run["cores_used"], run["machine_busy"]
        ms, ms1 = run["cpu_ms_per_event"], first["cpu_ms_per_event"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in used.items())
        notes.append(
            f"{run['workers']} workers: efficiency {run['efficiency']:.2f}; the machine was "
            f"{busy:.0%} busy ({cores} cores; cores used: {parts}); worker CPU per event "
            f"{ms1['workers']:.2f} -> {ms['workers']:.2f} ms, PostgreSQL "
            f"{ms1['postgres']:.2f} -> {ms['postgres']:.2f} ms, Redis "
            f"{ms1['redis']:.2f} -> {ms['redis']:.2f} ms, emulator "
            f"{ms1['emulator']:.2f} -> {ms['emulator']:.2f} ms; workers taken off a core "
            f"{first['preempted_per_1000_events']:.0f} -> {run['preempted_per_1000_events']:.0f}"
            " times per 1000 events"
        )
    return notes


def parse_counts(text: str) -> list[int]:
    counts = [int(v) for v in text.split(",") if v.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts are positive integers, e.g. 1,2,4")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--workers", type=parse_counts, default=[1, 2, 4], help="e.g. 1,2,4")
    parser.add_argument(
        "--backlog", type=int, default=20_000, help="events queued before each run (20000)"
    )
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument(
        "--warmup", type=float, default=4.0, help="seconds before the window opens (4)"
    )
    parser.add_argument("--users", type=int, default=10_000, help="graph size (default 10000)")
    parser.add_argument("--database", default=BENCH_DB, help=f"database to seed ({BENCH_DB})")
    parser.add_argument("--emulator", choices=["fauxqs", "moto"], default="fauxqs")
    parser.add_argument(
        "--redis",
        choices=["own", "env"],
        default="own",
        help="own: a redis-server started for the run, so its CPU is the pipeline's (default);"
        " env: the server of REDIS_URL",
    )
    args = parser.parse_args(argv)
    base = load_settings()
    with contextlib.ExitStack() as stack:
        update: dict[str, Any] = {
            "database_url": with_database(base.database_url, args.database),
            "aws_endpoint_url": stack.enter_context(emu.emulator(args.emulator)),
            "receive_wait_seconds": 1,
        }
        redis_pids = set()
        if args.redis == "own":
            update["redis_url"], pid = stack.enter_context(own_redis())
            redis_pids.add(pid)
        result = asyncio.run(measure(args, base.model_copy(update=update), redis_pids))
        result["redis"] = args.redis
    cores = result["cores"]
    print(
        f"feed pipeline, {result['users']} users, backlog {result['backlog']} events per run; "
        f"{cores} cores shared by the workers, PostgreSQL, Redis, the emulator and this process"
    )
    print("workers  events/s  worker CPU-s  events/CPU-s  efficiency  speed-up  machine busy")
    for run in result["runs"]:
        print(
            f"{run['workers']:>7}  {run['events_per_s']:>8,.1f}  {run['worker_cpu_s']:>12.2f}"
            f"  {run['events_per_worker_cpu_s']:>12,.1f}  {run['efficiency']:>10.2f}"
            f"  {run['speedup']:>8.2f}  {run['machine_busy']:>12.0%}"
            + ("  (queue drained: raise --backlog)" if run["drained"] else "")
        )
    for run in result["runs"]:
        used = ", ".join(f"{k} {v:.2f}" for k, v in run["cores_used"].items())
        print(
            f"  {run['workers']} workers, cores used: {used}; workers taken off a core"
            f" {run['preempted_per_1000_events']:.0f} times per 1000 events"
        )
    for note in where_lost(result["runs"], cores or 1):
        print(f"below {TARGET_EFFICIENCY:.0%}: {note}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
