"""`socialpipe loadtest`: P95 end-to-end latency of posts and profile updates under load."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import asyncpg
import typer
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError
from rich.console import Console

from cli.common import fail, run, settings
from config.logging import configure_logging
from consumers.kafka.topics import KafkaUnavailable
from contracts.errors import TransientError
from loadtest.broker import BrokerError
from loadtest.bus import BusError
from loadtest.emulator import EmulatorError
from loadtest.graph import LOADTEST_SHAPE, GraphShape
from loadtest.processes import ProcessError
from loadtest.redis_cluster import ClusterError
from loadtest.report import LoadReport, report_table, summary_lines
from loadtest.runner import LoadOptions, Progress, run_loadtest
from store.migrate import MigrationError


class EmulatorChoice(StrEnum):
    fauxqs = "fauxqs"
    moto = "moto"
    auto = "auto"
    none = "none"


class TransportChoice(StrEnum):
    sqs = "sqs"
    kafka = "kafka"


class BrokerChoice(StrEnum):
    tansu = "tansu"
    none = "none"


class ConnectionsSource(StrEnum):
    postgres = "postgres"
    grpc = "grpc"


class OptionMismatch(ValueError):
    """An option that the chosen transport does not use; the message says which."""


def bus_choices(
    transport: TransportChoice, emulator: EmulatorChoice | None, broker: BrokerChoice | None
) -> tuple[EmulatorChoice, BrokerChoice]:
    """The emulator and broker of a run, refusing the one its transport does not use."""
    if transport == TransportChoice.kafka and emulator is not None:
        raise OptionMismatch("--emulator is for --transport sqs; Kafka runs take --broker.")
    if transport == TransportChoice.sqs and broker is not None:
        raise OptionMismatch("--broker is for --transport kafka; SQS runs take --emulator.")
    return emulator or EmulatorChoice.fauxqs, broker or BrokerChoice.tansu


def loadtest(
    users: int = typer.Option(30_000, "--users", min=2, max=2_000_000, help="People in the graph."),
    median_connections: float = typer.Option(
        LOADTEST_SHAPE.median_degree, "--median-connections", min=1, help="Median connections."
    ),
    sigma: float = typer.Option(
        LOADTEST_SHAPE.sigma,
        "--sigma",
        min=0,
        help="Lognormal spread of connection counts (1.36 puts p99 near 20x the median).",
    ),
    hub_connections: str = typer.Option(
        "10000,20000,30000",
        "--hub-connections",
        help="Connections of the few very connected authors, comma-separated ('' for none).",
    ),
    hub_post_share: float = typer.Option(
        0.005, "--hub-post-share", min=0, max=1, help="Share of posts written by those hubs."
    ),
    posts_per_minute: float = typer.Option(1000.0, "--posts-per-minute", min=0.1),
    profile_updates_per_second: float = typer.Option(
        50.0, "--profile-updates-per-second", min=0.01
    ),
    duration: float = typer.Option(60.0, "--duration", min=1, help="Measured seconds of load."),
    warmup: float = typer.Option(10.0, "--warmup", min=0, help="Seconds of load before measuring."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Worker processes started per pipeline."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, help="--concurrency of each started worker."
    ),
    attach: bool = typer.Option(
        False,
        "--attach",
        help="Use workers already running against this database, Redis and the bus"
        " (AWS_ENDPOINT_URL, or KAFKA_BOOTSTRAP_SERVERS with --transport kafka).",
    ),
    transport: TransportChoice | None = typer.Option(
        None,
        "--transport",
        help="Event bus: sqs (SNS/SQS) or kafka (events topic, consumer groups)."
        " Default: EVENT_TRANSPORT (sqs unless set).",
        show_default=False,
    ),
    emulator: EmulatorChoice | None = typer.Option(
        None,
        "--emulator",
        help="SQS/SNS emulator to start on loopback (default fauxqs); none uses"
        " AWS_ENDPOINT_URL (or AWS). SQS only.",
        show_default=False,
    ),
    broker: BrokerChoice | None = typer.Option(
        None,
        "--broker",
        help="Kafka broker: tansu (default) starts one on a free loopback port; none uses"
        " KAFKA_BOOTSTRAP_SERVERS. Kafka only.",
        show_default=False,
    ),
    redis_cluster: bool = typer.Option(
        False,
        "--redis-cluster",
        help="Start a local Redis Cluster (3 masters on loopback) for the run and point"
        " the probes and the started workers at it; stopped at the end. Without it,"
        " REDIS_URL (one node, or a redis+cluster:// URL) is used.",
    ),
    database_read_url: str | None = typer.Option(
        None,
        "--database-read-url",
        help="DATABASE_READ_URL of the started workers: a streaming replica of"
        " DATABASE_URL's server (its database becomes --database). Default:"
        " DATABASE_READ_URL, else every read goes to the primary.",
        show_default=False,
    ),
    through_api: bool = typer.Option(
        False, "--through-api", help="Drive the load through the GraphQL API and the relay."
    ),
    connections_source: ConnectionsSource = typer.Option(
        ConnectionsSource.postgres,
        "--connections-source",
        help="Where the started feed workers read connection lists: postgres (direct) or"
        " grpc (a Connections Service the run starts, docs/connections-service.md).",
    ),
    slo_feed_p95: float = typer.Option(
        2.0, "--slo-feed-p95", min=0, help="Seconds; P95 post → all feeds must not exceed it."
    ),
    slo_search_p95: float = typer.Option(
        5.0, "--slo-search-p95", min=0, help="Seconds; P95 profile → searchable bound."
    ),
    database: str = typer.Option(
        "socialpipe_loadtest", "--database", help="Database on DATABASE_URL's server (reset!)."
    ),
    seed: int = typer.Option(7, "--seed", help="Seed of the graph and of the load."),
    drain: float = typer.Option(30.0, "--drain", min=0, help="Seconds to wait for stragglers."),
    out: Path = typer.Option(
        Path("out/loadtest"), "--out", help="Folder for the picture, JSON, logs."
    ),
    json_only: bool = typer.Option(False, "--json", help="Print only the JSON report."),
) -> None:
    """Seed a heavy-tailed graph, drive posts and profile updates open-loop, report P95.

    Latency runs from each event's occurredAt until a post is in the feed of every
    connection, or an update's version is searchable. Exit code 1 when an SLO is
    missed or anything was lost (dead letters, driver errors, never visible).
    """
    cfg = settings()
    configure_logging("loadtest", "WARNING")
    bus = transport or TransportChoice(cfg.event_transport)
    try:
        emulator, broker = bus_choices(bus, emulator, broker)
    except OptionMismatch as exc:
        fail(str(exc), code=2)
    grpc = connections_source is ConnectionsSource.grpc
    if attach and (redis_cluster or database_read_url or grpc):
        fail(
            "--redis-cluster, --database-read-url and --connections-source configure the"
            " workers a run starts; attached workers keep their own settings.",
            code=2,
        )
    hubs = tuple(int(x) for x in hub_connections.split(",") if x.strip())
    options = LoadOptions(
        users=users,
        shape=GraphShape(
            median_degree=median_connections, sigma=sigma, hubs=len(hubs), hub_degrees=hubs
        ),
        posts_per_minute=posts_per_minute,
        profile_updates_per_second=profile_updates_per_second,
        duration=duration,
        warmup=warmup,
        workers=workers,
        concurrency=concurrency,
        attach=attach,
        transport=bus.value,
        emulator=emulator.value,
        broker=broker.value,
        mode="api" if through_api else "direct",
        notifications_workers=1 if through_api else 0,
        slo_feed_p95=slo_feed_p95,
        slo_search_p95=slo_search_p95,
        database=database,
        seed=seed,
        hub_post_share=hub_post_share,
        drain_seconds=drain,
        out_dir=out,
        redis_cluster=redis_cluster,
        database_read_url=database_read_url,
        connections_source=connections_source.value,
    )
    console = Console(stderr=True)
    if not json_only:
        console.print(
            f"[bold]socialpipe loadtest[/] over {bus.value}: {users} users, "
            f"{posts_per_minute:g} posts/min, "
            f"{profile_updates_per_second:g} profile updates/s, {warmup:g}+{duration:g} s, "
            f"{'attached workers' if attach else f'{workers} worker(s) per pipeline'}"
            f"{', on a local Redis Cluster' if redis_cluster else ''}"
            f"{', reading a replica' if database_read_url else ''}"
            f"{', connections through the Connections Service' if grpc else ''} …"
        )
    report = execute(console, lambda progress: run_loadtest(cfg, options, progress=progress))
    emit(report, out, json_only)
    verdict(report)


# Failures a load run expects (a service down, a child that did not start): their
# message is already one sentence.
SENTENCES: Final = (
    ClusterError,
    EmulatorError,
    BrokerError,
    BusError,
    ProcessError,
    MigrationError,
    asyncpg.PostgresError,
    TransientError,
)


def failure_sentence(exc: Exception) -> str | None:
    """One sentence for an expected failure of a run, or None for a bug that should surface."""
    if isinstance(exc, SENTENCES):
        return str(exc)
    if isinstance(exc, KafkaUnavailable):
        return f"{exc}."
    if isinstance(exc, KafkaError):
        return f"Kafka refused a request ({exc})."
    if isinstance(exc, RedisError):
        return f"Redis at REDIS_URL failed: {exc}"
    if isinstance(exc, ClientError):
        return f"SQS/SNS refused a request: {exc.response.get('Error', {}).get('Message', exc)}."
    if isinstance(exc, BotoCoreError):
        return f"cannot reach SQS/SNS ({exc})."
    return None


def execute(
    console: Console, runner: Callable[[Progress], Coroutine[Any, Any, LoadReport]]
) -> LoadReport:
    """Run the scenario with a live progress line, turning expected failures into one sentence."""
    live = console.is_terminal

    def progress(line: str) -> None:
        if live:
            sys.stderr.write("\r\x1b[2K" + line[: console.width - 1])
            sys.stderr.flush()

    try:
        report = run(runner(progress))
    except Exception as exc:
        sentence = failure_sentence(exc)
        if sentence is None:
            raise
        fail(sentence)
    finally:
        if live:
            sys.stderr.write("\n")
    return report


def emit(report: LoadReport, out: Path, json_only: bool, key: str = "loadtest") -> None:
    data = report.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    full = report.to_dict(samples=True)
    (out / f"last-{key}.json").write_text(json.dumps(full, indent=1))
    if not json_only:
        console = Console()
        console.print(report_table(report, f"socialpipe {key} over {report.transport}"))
        for line in summary_lines(report):
            console.print(line)
        for line in report.notes:
            console.print(line, markup=False, highlight=False)
        if report.picture:
            console.print(f"picture: {report.picture}")
        console.print(f"report with every sample: {out / f'last-{key}.json'}")
    typer.echo(json.dumps({key: data}, separators=(",", ":")))


def verdict(report: LoadReport) -> None:
    missed = [s.name for s in report.streams if s.slo_met is False]
    if missed:
        fail(f"SLO missed for {' and '.join(missed)}.")
    if not report.clean:
        lost = sum(s.not_visible for s in report.streams)
        errors = sum(s.errors for s in report.streams)
        fail(
            f"{sum(report.dlq.values())} dead-lettered, {errors} driver error(s), "
            f"{lost} event(s) never visible."
        )
