"""`socialpipe migrate up|down`."""

from __future__ import annotations

import asyncpg
import typer

from cli.common import fail, run, settings
from store.db import database_name
from store.migrate import MigrationError, downgrade, upgrade

app = typer.Typer(
    help="Apply or revert the database schema (reversible SQL migrations).", no_args_is_help=True
)


@app.command()
def up() -> None:
    """Create the database if it does not exist, then apply every pending migration."""
    cfg = settings()
    try:
        applied = run(upgrade(cfg.database_url))
    except (MigrationError, asyncpg.PostgresError) as exc:
        fail(str(exc))
    db = database_name(cfg.database_url)
    if not applied:
        typer.echo(f"{db}: already up to date.")
    for m in applied:
        typer.echo(f"{db}: applied {m.revision:04d}_{m.name}")


@app.command()
def down(
    to: int = typer.Option(0, "--to", help="Revert down to this revision (0 = empty schema)."),
) -> None:
    """Revert applied migrations above revision --to, newest first."""
    cfg = settings()
    try:
        reverted = run(downgrade(cfg.database_url, to))
    except (MigrationError, asyncpg.PostgresError) as exc:
        fail(str(exc))
    db = database_name(cfg.database_url)
    if not reverted:
        typer.echo(f"{db}: nothing to revert.")
    for m in reverted:
        typer.echo(f"{db}: reverted {m.revision:04d}_{m.name}")
