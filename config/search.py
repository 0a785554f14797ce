"""Composition root of the search pipeline: the index backend and the handler."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg

from config.clients import postgres_probe
from config.settings import Settings
from contracts.failures import POSTGRES, SEARCH_INDEX
from pipelines.search.handler import SearchHandler, pool_loader
from pipelines.search.ports import SearchIndex
from pipelines.search.postgres import PostgresSearchIndex
from store.db import create_pool


async def open_search_index(
    stack: AsyncExitStack, settings: Settings, *, pool: asyncpg.Pool | None = None
) -> SearchIndex:
    """The `SearchIndex` named by `SEARCH_BACKEND`, closed with `stack`."""
    if settings.search_backend == "opensearch":
        from pipelines.search.opensearch import open_opensearch_index

        opensearch: SearchIndex = await open_opensearch_index(stack, settings.opensearch_url)
        return opensearch
    if pool is None:
        pool = await open_pool(stack, settings)
    return PostgresSearchIndex(pool)


async def open_pool(stack: AsyncExitStack, settings: Settings) -> asyncpg.Pool:
    pool = await create_pool(settings.database_url, max_size=10)
    stack.push_async_callback(pool.close)
    return pool


async def build_search_handler(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    index: SearchIndex | None = None,
    pool: asyncpg.Pool | None = None,
) -> SearchHandler:
    """Build the `search` pipeline's handler; tests may pass their own index or pool."""
    if pool is None:
        pool = await open_pool(stack, settings)
    if index is None:
        index = await open_search_index(stack, settings, pool=pool)
    dependencies = {POSTGRES: postgres_probe(pool), SEARCH_INDEX: index.ping}
    return SearchHandler(pool_loader(pool), index, dependencies=dependencies)
