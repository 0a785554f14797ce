"""An in-process API over the test database, Redis and the PostgreSQL search index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher

from config.api import build_api
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import SECRET, Api
from tests.settings import SettingsFactory


@pytest.fixture
async def api(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, settings_factory: SettingsFactory
) -> AsyncIterator[Api]:
    settings = settings_factory(api_token_secret=SECRET)
    async with AsyncExitStack() as stack:
        app = await build_api(
            stack,
            settings,
            pool=db,
            redis=redis_client,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Api(client)
