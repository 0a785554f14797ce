"""An in-process API over the test database, Redis and the PostgreSQL search index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher
from starlette.applications import Starlette

from config.api import build_api
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import SECRET, Api, ApiFrom
from tests.settings import SettingsFactory


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    """Settings the API is built with beyond the test defaults: a module that needs
    others (a shorter FEED_MAX_LENGTH, say) overrides this fixture."""
    return {}


@pytest.fixture
async def api_app(
    db: asyncpg.Pool,
    redis_client: redis_asyncio.Redis,
    settings_factory: SettingsFactory,
    api_overrides: dict[str, Any],
) -> AsyncIterator[Starlette]:
    """The API's ASGI app over the test database and Redis, built by its composition root."""
    settings = settings_factory(api_token_secret=SECRET, **api_overrides)
    async with AsyncExitStack() as stack:
        yield await build_api(
            stack,
            settings,
            pool=db,
            redis=redis_client,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )


@pytest.fixture
async def api(api_app: Starlette) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Api(client)


@pytest.fixture
async def api_from(api_app: Starlette) -> AsyncIterator[ApiFrom]:
    """Clients of the same app that each come from a client address of their own."""
    async with AsyncExitStack() as stack:

        def at(address: str) -> Api:
            transport = httpx.ASGITransport(app=api_app, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://api")
            stack.push_async_callback(client.aclose)
            return Api(client)

        yield at
