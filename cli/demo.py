"""`socialpipe demo`: the feed pipeline end to end with a short load, and its P95 report."""

from __future__ import annotations

import json

import asyncpg
import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from cli.common import fail, run, settings
from config.logging import configure_logging
from contracts.errors import TransientError
from loadtest.demo import DemoOptions, DemoReport, run_demo
from store.migrate import MigrationError


def demo(
    duration: float = typer.Option(60.0, "--duration", min=1, help="Seconds of posting."),
    users: int = typer.Option(300, "--users", min=2, max=1_000_000, help="People in the graph."),
    rate: float = typer.Option(1000.0, "--rate", min=1, help="Posts per minute (open loop)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the social graph and of authorship."),
    database: str = typer.Option(
        "socialpipe_demo", "--database", help="Demo database on DATABASE_URL's server (reset)."
    ),
) -> None:
    """Run the feed pipeline on embedded defaults (moto, PostgreSQL, Redis) and report latency.

    Seeds a heavy-tailed social graph, publishes posts at --rate for --duration
    seconds, runs the feed worker in-process and prints posts, feed entries
    written, P50/P95/P99 post → last feed latency and the DLQ count, then one
    JSON line with the same figures.
    """
    cfg = settings()
    configure_logging("demo", "WARNING")
    options = DemoOptions(
        duration=duration, users=users, rate_per_minute=rate, seed=seed, database=database
    )
    console = Console(stderr=True)
    console.print(
        f"[bold]socialpipe demo[/]: {users} users, {rate:g} posts/min for {duration:g} s "
        f"(database {database}) …"
    )
    try:
        report = run(run_demo(cfg, options))
    except (MigrationError, asyncpg.PostgresError, TransientError) as exc:
        fail(str(exc))
    except RedisError as exc:
        fail(f"Redis at REDIS_URL failed: {exc}")
    Console().print(report_table(report))
    typer.echo(json.dumps({"demo": report.to_dict()}, separators=(",", ":")))
    if report.dlq or report.not_visible:
        fail(f"{report.dlq} message(s) dead-lettered, {report.not_visible} post(s) never seen.")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


def report_table(report: DemoReport) -> Table:
    table = Table(title="Feed fan-out demo", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    lat = report.latency
    rows = [
        ("users / connections", f"{report.users} / {report.connections}"),
        ("posts published", str(report.posts)),
        ("feed entries written", f"{report.feed_entries_written}"),
        ("feed entries expected", f"{report.feed_entries_expected}"),
        ("posts measured", str(lat.count)),
        ("P50 post → last feed", _ms(lat.p50)),
        ("P95 post → last feed", _ms(lat.p95)),
        ("P99 post → last feed", _ms(lat.p99)),
        ("max post → last feed", _ms(lat.max)),
        ("posts never seen", str(report.not_visible)),
        ("DLQ messages", str(report.dlq)),
        ("elapsed", f"{report.elapsed_seconds:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
