"""`socialpipe search QUERY …` and `socialpipe index rebuild|drop-previous`."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg
import orjson
import typer
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import OpenSearchException
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.common import fail, run, settings
from config.search import open_pool, open_search_index
from config.settings import Settings
from pipelines.search.handler import pool_loader
from pipelines.search.ports import SearchHit, SearchQuery
from pipelines.search.rebuild import (
    OpenSearchRebuild,
    PostgresRebuild,
    RebuildError,
    RebuildReport,
    RebuildTarget,
    drop_previous_indices,
    drop_previous_table,
    rebuild,
)

index_app = typer.Typer(
    help="Maintain the people-search index (full rebuild, cleanup).", no_args_is_help=True
)

_SERVICE_ERRORS = (asyncpg.PostgresError, OpenSearchException, RebuildError)


def search(
    query: str = typer.Argument("", help="Words to match in names, headlines, titles, companies."),
    skill: list[str] = typer.Option([], "--skill", help="Only people with this skill (repeatable)"),
    company: list[str] = typer.Option(
        [], "--company", help="Only people who worked at this company (repeatable)."
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="At most this many results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Query the configured search index; private profiles show only name and skills."""
    cfg = settings()
    request = SearchQuery(text=query, skills=tuple(skill), companies=tuple(company), limit=limit)
    try:
        hits = run(_search(cfg, request))
    except _SERVICE_ERRORS as exc:
        fail(f"search failed: {exc}")
    if as_json:
        typer.echo(orjson.dumps([_hit_json(h) for h in hits]).decode())
        return
    Console().print(_table(hits))


async def _search(cfg: Settings, request: SearchQuery) -> list[SearchHit]:
    async with AsyncExitStack() as stack:
        index = await open_search_index(stack, cfg)
        return await index.search(request)


def _hit_json(hit: SearchHit) -> dict[str, object]:
    return {
        "userId": str(hit.user_id),
        "fullName": hit.full_name,
        "headline": hit.headline,
        "companies": list(hit.companies),
        "skills": list(hit.skills),
        "visibility": hit.visibility,
        "score": round(hit.score, 4),
    }


def _table(hits: list[SearchHit]) -> Table:
    table = Table(title=f"{len(hits)} result(s)")
    for column in ("name", "headline", "companies", "skills"):
        table.add_column(column)
    for h in hits:
        table.add_row(h.full_name, h.headline or "", ", ".join(h.companies), ", ".join(h.skills))
    return table


@index_app.command("rebuild")
def rebuild_command(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Users per batch."),
) -> None:
    """Fill a new index from PostgreSQL, verify its count, swap it in; keep the old one."""
    cfg = settings()
    try:
        report = run(_rebuild(cfg, batch_size))
    except _SERVICE_ERRORS as exc:
        fail(f"rebuild failed: {exc}")
    typer.echo(
        f"indexed {report.indexed} of {report.scanned} profiles"
        f" ({report.invalid} refused), {report.counted} documents counted; {report.swapped}"
    )


async def _rebuild(cfg: Settings, batch_size: int) -> RebuildReport:
    async with AsyncExitStack() as stack:
        pool = await open_pool(stack, cfg)
        target: RebuildTarget
        if cfg.search_backend == "opensearch":
            await open_search_index(stack, cfg)  # the template and first index exist
            target = OpenSearchRebuild(await _opensearch(stack, cfg))
        else:
            target = PostgresRebuild(pool)
        with Progress(
            TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        ) as bar:
            task = bar.add_task("profiles", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, advance=done, total=total)

            return await rebuild(
                pool, pool_loader(pool), target, batch_size=batch_size, progress=advance
            )


async def _opensearch(stack: AsyncExitStack, cfg: Settings) -> AsyncOpenSearch:
    client = AsyncOpenSearch(hosts=[cfg.opensearch_url], max_retries=0, timeout=60)
    stack.push_async_callback(client.close)
    return client


@index_app.command("drop-previous")
def drop_previous() -> None:
    """Drop the index a rebuild replaced (after checking the new one)."""
    cfg = settings()
    try:
        dropped = run(_drop_previous(cfg))
    except _SERVICE_ERRORS as exc:
        fail(f"could not drop the previous index: {exc}")
    typer.echo(f"dropped: {', '.join(dropped)}" if dropped else "no previous index to drop.")


async def _drop_previous(cfg: Settings) -> list[str]:
    async with AsyncExitStack() as stack:
        if cfg.search_backend == "opensearch":
            return await drop_previous_indices(await _opensearch(stack, cfg))
        pool = await open_pool(stack, cfg)
        return ["search_documents_previous"] if await drop_previous_table(pool) else []
