"""An in-process API over the test database, Redis and the PostgreSQL search index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher

from config.api import build_api
from pipelines.search.postgres import PostgresSearchIndex
from tests.settings import SettingsFactory

SECRET = "test-secret-" + "x" * 40
GOOD_PASSWORD = "Correct-horse-1"


class Api:
    """A GraphQL client: `call` returns (status, body)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return r.status_code, r.json()

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        status, body = await self.call(query, variables, token)
        assert status == 200, body
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def register(
        self, email: str, full_name: str = "Ada Lovelace", dob: str = "1990-01-01"
    ) -> tuple[str, str]:
        data = await self.ok(
            "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }",
            {
                "i": {
                    "email": email,
                    "password": GOOD_PASSWORD,
                    "fullName": full_name,
                    "dateOfBirth": dob,
                }
            },
        )
        return data["register"]["token"], data["register"]["user"]["id"]

    async def connect(self, a_token: str, b_token: str, b_id: str) -> None:
        req = await self.ok(
            "mutation($u: ID!) { requestConnection(userId: $u) { id } }", {"u": b_id}, a_token
        )
        await self.ok(
            "mutation($c: ID!) { respondToConnection(connectionId: $c, accept: true) { status } }",
            {"c": req["requestConnection"]["id"]},
            b_token,
        )


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
