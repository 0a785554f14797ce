"""`socialpipe reconcile search|feeds|notifications`: find and repair drift.

See docs/reconciliation.md for what each reconciler compares and reports.

Exit codes: 0 when the read model is consistent at the end of the run. A dry
run changes nothing and also exits 0, saying whether drift was found (so a
scheduled dry run does not page anyone; alert on the JSON's `consistent`).
1 when repairs failed or a service could not be reached; 2 for bad options.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
import orjson
import typer
from opensearchpy.exceptions import OpenSearchException
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from cli.common import fail, run, settings
from config.reconcile import (
    Pace,
    ReconcileUnavailable,
    build_feed_reconciler,
    build_notification_reconciler,
    build_search_reconciler,
)
from config.settings import Settings
from reconcile.batches import MAX_BATCH_SIZE, MAX_PARALLELISM
from reconcile.feeds import DEFAULT_PUSH_SKEW, FeedReconcileOptions
from reconcile.notifications import NotificationReconcileOptions
from reconcile.report import ReconcileReport
from reconcile.search import SearchReconcileOptions

app = typer.Typer(
    help="Find and repair drift between PostgreSQL and the read models.", no_args_is_help=True
)

_SERVICE_ERRORS = (asyncpg.PostgresError, OpenSearchException, RedisError, ReconcileUnavailable)

BATCH = typer.Option(
    1000,
    "--batch-size",
    min=1,
    max=MAX_BATCH_SIZE,
    help=f"Users per batch (at most {MAX_BATCH_SIZE}).",
)
PARALLELISM = typer.Option(4, "--parallelism", min=1, max=MAX_PARALLELISM, help="Batches at once.")
DRY_RUN = typer.Option(False, "--dry-run", help="Report drift; change nothing.")
MAX_RATE = typer.Option(
    None,
    "--max-rate",
    min=1.0,
    help="At most R users/s: the ceiling of the adaptive pace, or the fixed rate.",
)
PACE = typer.Option(
    "adaptive",
    "--pace",
    help="adaptive: start at 200/s and yield to live traffic (slower while the live queue"
    " backs up or the run's own queries slow down, faster when quiet); fixed: run at"
    " --max-rate (or flat out without it).",
    case_sensitive=False,
)
JSON_OUT = typer.Option(
    None, "--json", help="Also write the report as JSON to this file ('-' prints it instead)."
)


class _Reconciler(Protocol):
    async def run(self) -> ReconcileReport: ...


@app.command("search")
def search(
    batch_size: int = BATCH,
    parallelism: int = PARALLELISM,
    dry_run: bool = DRY_RUN,
    max_rate: float | None = MAX_RATE,
    pace: Pace = PACE,
    json_out: str | None = JSON_OUT,
) -> None:
    """Compare every user's expected search document with the index; repair drift.

    Documents are compared by content (an older version with the expected
    content is not stale). Missing and stale documents are written, private
    profiles' leaked fields removed (counted as privacy), documents of deleted
    users deleted (orphaned).
    """
    options = SearchReconcileOptions(batch_size, parallelism, max_rate, dry_run)

    async def build(stack: AsyncExitStack, cfg: Settings) -> _Reconciler:
        return await build_search_reconciler(stack, cfg, options, pace=pace)

    _finish(_run(build), json_out)


@app.command("feeds")
def feeds(
    user_id: list[str] = typer.Option([], "--user-id", help="Only this user's feed (repeatable)."),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Rewrite feeds from scratch (cache warming after a Redis loss)."
    ),
    batch_size: int = BATCH,
    parallelism: int = PARALLELISM,
    dry_run: bool = DRY_RUN,
    max_rate: float | None = MAX_RATE,
    pace: Pace = PACE,
    json_out: str | None = JSON_OUT,
    push_skew: float = typer.Option(
        DEFAULT_PUSH_SKEW.total_seconds(),
        "--push-skew",
        min=0.0,
        help="Seconds a post may wait for its fan-out: a full feed may hold an older post"
        " of a connection in place of an expected one created at most this much later.",
    ),
) -> None:
    """Compare each feed's membership with its connections' newest posts; repair drift.

    Expected: the newest FEED_MAX_LENGTH posts of the user's connections. Missing,
    extra, duplicate and phantom entries are repaired; order is not drift. A real
    run holds `fanout:careful-until` ahead so the feed workers de-duplicate every
    push while feeds are rewritten.
    """
    cfg = settings()
    options = FeedReconcileOptions(
        max_length=cfg.feed_max_length,
        batch_size=batch_size,
        parallelism=parallelism,
        max_rate=max_rate,
        dry_run=dry_run,
        rebuild=rebuild,
        user_ids=tuple(_user_ids(user_id)),
        push_skew=timedelta(seconds=push_skew),
    )

    async def build(stack: AsyncExitStack, cfg: Settings) -> _Reconciler:
        return await build_feed_reconciler(stack, cfg, options, pace=pace)

    _finish(_run(build), json_out)


@app.command("notifications")
def notifications(
    batch_size: int = BATCH,
    parallelism: int = PARALLELISM,
    dry_run: bool = DRY_RUN,
    max_rate: float | None = MAX_RATE,
    pace: Pace = PACE,
    json_out: str | None = JSON_OUT,
) -> None:
    """Insert the notification rows connections and comments call for; fix unread counters."""
    options = NotificationReconcileOptions(batch_size, parallelism, max_rate, dry_run)

    async def build(stack: AsyncExitStack, cfg: Settings) -> _Reconciler:
        return await build_notification_reconciler(stack, cfg, options, pace=pace)

    _finish(_run(build), json_out)


def _user_ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError:
        fail("--user-id takes a user id (a UUID).", code=2)


def _run(build: Callable[[AsyncExitStack, Settings], Awaitable[_Reconciler]]) -> ReconcileReport:
    cfg = settings()

    async def main() -> ReconcileReport:
        async with AsyncExitStack() as stack:
            return await (await build(stack, cfg)).run()

    try:
        return run(main())
    except _SERVICE_ERRORS as exc:
        fail(f"reconciliation failed: {exc}")


def _finish(report: ReconcileReport, json_out: str | None) -> None:
    data = orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode()
    if json_out == "-":
        typer.echo(data)
    else:
        Console().print(_table(report))
        if json_out:
            Path(json_out).write_text(data + "\n")
    if report.dry_run:
        verdict = "drift found (dry run, nothing changed)" if report.drift else "no drift"
        typer.echo(f"reconcile {report.kind}: {verdict}.", err=True)
        return
    if not report.consistent:
        fail(f"{report.failed} repair(s) failed; the {report.kind} read model still drifts.")


def _table(report: ReconcileReport) -> Table:
    title = f"reconcile {report.kind}" + (" (dry run)" if report.dry_run else "")
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    for label, value in report.rows():
        table.add_row(label, value)
    return table
