"""`socialpipe demo`: the whole system with a minute of load through the API, and its report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.common import settings
from cli.loadtest import ConnectionsSource, EmulatorChoice, emit, execute, verdict
from config.logging import configure_logging
from loadtest.demo import DemoOptions, run_demo


def demo(
    duration: float = typer.Option(60.0, "--duration", min=1, help="Seconds of load."),
    users: int = typer.Option(300, "--users", min=2, max=1_000_000, help="People in the graph."),
    rate: float = typer.Option(1000.0, "--rate", min=1, help="Posts per minute (open loop)."),
    updates: float = typer.Option(50.0, "--updates", min=0.1, help="Profile updates per second."),
    seed: int = typer.Option(7, "--seed", help="Seed of the social graph and of the load."),
    database: str = typer.Option(
        "socialpipe_demo", "--database", help="Demo database on DATABASE_URL's server (reset)."
    ),
    emulator: EmulatorChoice = typer.Option(
        EmulatorChoice.moto, "--emulator", help="moto (Python only) or fauxqs (needs Node)."
    ),
    out: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the picture and logs."),
    connections_source: ConnectionsSource = typer.Option(
        ConnectionsSource.grpc,
        "--connections-source",
        help="grpc: the feed worker reads connection lists through the Connections Service"
        " the demo starts; postgres: straight from PostgreSQL.",
    ),
) -> None:
    """Run API, relay, all three workers and the Connections Service; drive the seed's load.

    Seeds a heavy-tailed social graph, sends --rate posts a minute and --updates
    profile updates a second as GraphQL mutations for --duration seconds, and
    measures until each post is in every connection's feed and each update is
    searchable. Prints the P95 report against the seed's SLOs (2 s and 5 s),
    three example feeds and a search, writes a picture, then one JSON line.
    """
    cfg = settings()
    configure_logging("demo", "WARNING")
    options = DemoOptions(
        duration=duration,
        users=users,
        posts_per_minute=rate,
        profile_updates_per_second=updates,
        seed=seed,
        database=database,
        emulator=emulator.value,
        out_dir=out,
        connections_source=connections_source.value,
    )
    console = Console(stderr=True)
    grpc = connections_source is ConnectionsSource.grpc
    service = " and the Connections Service" if grpc else ""
    console.print(
        f"[bold]socialpipe demo[/]: API, relay, 3 workers{service}; {users} users, "
        f"{rate:g} posts/min and {updates:g} profile updates/s through the API for {duration:g} s "
        f"(database {database}) …"
    )
    report = execute(console, lambda progress: run_demo(cfg, options, progress))
    emit(report, out, json_only=False, key="demo")
    verdict(report)
