"""Benchmark of a 30,000-id connection read over gRPC against the same read from PostgreSQL.

Seeds one author with N accepted connections (half in each direction) by COPY
into a separate database (`socialpipe_bench_grpc`, recreated each run), starts
`socialpipe connections-service` as a process on a free loopback port, then
measures in the same run, alternating the two so that drift hits both alike:

* direct: the feed worker's PostgreSQL read (`PgConnectionSource`: keyset pages
  of 5,000, packed ids) from this process;
* gRPC: the feed worker's gRPC read (`GrpcConnectionSource`: one
  `ListConnectionIds` stream of 5,000-id chunks) from the service, which does
  the same PostgreSQL read and streams each page as it is read.

It prints the median time of each and the ratio direct time / gRPC time (the
share of the direct path's throughput the gRPC path keeps; the target is
>= 0.5), and the same as one JSON line.

    python -m bench.grpc_connections [--connections 30000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import grpc
import orjson

from config.settings import load_settings
from connections_service.client import ConnectionsClient, open_channel
from loadtest.emulator import free_port
from loadtest.processes import socialpipe_command
from pipelines.feed.grpc_connections import GrpcConnectionSource
from store.connections import PgConnectionSource
from store.db import create_pool, drop_database, with_database
from store.migrate import upgrade

BENCH_DB = "socialpipe_bench_grpc"
START_TIMEOUT = 30.0
TARGET = 0.5

Read = Callable[[uuid.UUID], Awaitable[Sequence[uuid.UUID]]]


async def seed(pool: asyncpg.Pool, connections: int) -> uuid.UUID:
    """An author with `connections` accepted connections, half requested by each side."""
    author, *others = [uuid.uuid4() for _ in range(connections + 1)]
    half = connections // 2
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "users",
            records=[(u, f"{u}@bench.example") for u in (author, *others)],
            columns=["id", "email"],
        )
        rows = [(author, o, "accepted") for o in others[:half]]
        rows += [(o, author, "accepted") for o in others[half:]]
        await conn.copy_records_to_table(
            "connections", records=rows, columns=["requester_id", "addressee_id", "status"]
        )
        await conn.execute("ANALYZE connections")
    return author


def start_service(database_url: str, address: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONNECTIONS_SERVICE_ADDR": address,
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_READ_URL", None)
    return subprocess.Popen(
        [socialpipe_command(), "connections-service"], env=env, stdout=subprocess.DEVNULL
    )


async def wait_serving(client: ConnectionsClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the connections service exited with {proc.returncode}")
        try:
            if await client.serving():
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the connections service did not answer in {START_TIMEOUT} s")
        await asyncio.sleep(0.1)


async def timed(read: Read, author: uuid.UUID, expected: int) -> float:
    started = time.perf_counter()
    ids = await read(author)
    elapsed = time.perf_counter() - started
    if len(ids) != expected:
        raise SystemExit(f"read {len(ids)} ids, expected {expected}")
    return elapsed


async def measure(
    direct: Read, over_grpc: Read, author: uuid.UUID, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """Warm both paths, then alternate them `repeat` times."""
    for _ in range(3):
        await timed(direct, author, args.connections)
        await timed(over_grpc, author, args.connections)
    direct_times, grpc_times = [], []
    for _ in range(args.repeat):
        direct_times.append(await timed(direct, author, args.connections))
        grpc_times.append(await timed(over_grpc, author, args.connections))
    return direct_times, grpc_times


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = with_database(load_settings().database_url, args.database)
    await drop_database(url)
    await upgrade(url)
    address = f"127.0.0.1:{free_port()}"
    pool = await create_pool(url, max_size=4)
    proc: subprocess.Popen[bytes] | None = None
    channel = open_channel(address)
    try:
        author = await seed(pool, args.connections)
        proc = start_service(url, address)
        client = ConnectionsClient(channel, deadline=30.0)
        await wait_serving(client, proc)
        direct = PgConnectionSource(pool).accepted_connections
        over_grpc = GrpcConnectionSource(client).accepted_connections
        direct_times, grpc_times = await measure(direct, over_grpc, author, args)
    finally:
        await channel.close()
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        await pool.close()
        await drop_database(url)
    direct_median = statistics.median(direct_times)
    grpc_median = statistics.median(grpc_times)
    return {
        "connections": args.connections,
        "repeat": args.repeat,
        "direct_ms": round(direct_median * 1000, 2),
        "grpc_ms": round(grpc_median * 1000, 2),
        "direct_ids_per_s": round(args.connections / direct_median),
        "grpc_ids_per_s": round(args.connections / grpc_median),
        "ratio": round(direct_median / grpc_median, 3),
        "target": TARGET,
    }


def report(result: dict[str, object]) -> None:
    print(f"connection read of {result['connections']:,} ids, median of {result['repeat']} runs")
    rows = (
        ("direct (PostgreSQL)", result["direct_ms"], result["direct_ids_per_s"]),
        ("Connections Service", result["grpc_ms"], result["grpc_ids_per_s"]),
    )
    for name, ms, rate in rows:
        print(f"  {name:<22} {ms:>9} ms  {rate:>12,} ids/s")
    print(f"  {'ratio gRPC / direct':<22} {result['ratio']:>9}  (target >= {TARGET})")
    print(orjson.dumps(result).decode())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_connections", description=__doc__)
    parser.add_argument("--connections", type=int, default=30_000, help="ids in the read")
    parser.add_argument("--repeat", type=int, default=30, help="timed reads of each path")
    parser.add_argument(
        "--database", default=BENCH_DB, help="database to create (dropped before and after)"
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.repeat < 1:
        parser.error("--connections and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
