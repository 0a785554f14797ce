"""Composition root of the search pipeline: the index backend and the handler.

With `DATABASE_READ_URL` set, profiles are aggregated on the replica (the
primary answers for what the replica lacks); the index is always written
through the primary.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg

from config.clients import postgres_probe
from config.settings import Settings
from config.tracing import traced
from contracts.failures import POSTGRES, SEARCH_INDEX
from contracts.outcomes import Probe
from pipelines.search.handler import ProfileLoader, SearchHandler, pool_loader
from pipelines.search.ports import SearchIndex
from pipelines.search.postgres import PostgresSearchIndex
from store.db import create_pool
from store.profiles import RoutedProfileLoader
from store.replica import ReadRouter


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


async def open_read_pool(
    stack: AsyncExitStack, settings: Settings, *, max_size: int = 10
) -> asyncpg.Pool | None:
    """A pool on `DATABASE_READ_URL`, closed with `stack`; None when it is unset (no extra pool)."""
    if not settings.database_read_url:
        return None
    pool = await create_pool(settings.database_read_url, max_size=max_size)
    stack.push_async_callback(pool.close)
    return pool


def primary_and_replica_probe(primary: asyncpg.Pool, replica: asyncpg.Pool | None) -> Probe:
    """PostgreSQL is ready when the primary and, if configured, the replica answer."""
    if replica is None:
        return postgres_probe(primary)
    probes = (postgres_probe(primary), postgres_probe(replica))

    async def probe() -> object:
        return [await each() for each in probes]

    return probe


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
    replica = await open_read_pool(stack, settings)
    dependencies = {POSTGRES: primary_and_replica_probe(pool, replica), SEARCH_INDEX: index.ping}
    index = traced(index, settings.search_backend, "write")
    if replica is None:
        return SearchHandler(pool_loader(pool), index, dependencies=dependencies)
    routed = RoutedProfileLoader(ReadRouter(pool, replica, pipeline="search"))
    load: ProfileLoader = routed
    return SearchHandler(load, index, dependencies=dependencies, versioned=routed)
