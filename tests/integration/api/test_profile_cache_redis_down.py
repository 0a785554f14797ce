"""The API with its Redis unreachable: profiles are still served, changes wait.

This module's `redis_client` is a client of a loopback port nothing listens on,
so the shared `api` fixture builds the API over it (docs/profile-cache.md,
"When Redis fails").
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from prometheus_client import REGISTRY

from config.clients import no_client_retries
from contracts.api_messages import PROFILE_CHANGES_PAUSED
from tests.integration.api.client import Api
from tests.settings import PortFactory

PROFILE = "query($u: ID!) { profile(userId: $u) { fullName headline } }"
UPDATE = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { headline } }"


@pytest.fixture
async def redis_client(port_factory: PortFactory) -> AsyncIterator[redis_asyncio.Redis]:
    """A Redis client of an address nothing listens on (one attempt per command)."""
    client = redis_asyncio.Redis(host="127.0.0.1", port=port_factory(), retry=no_client_retries())
    yield client
    await client.aclose()


def read_failures() -> float:
    labels = {"operation": "read"}
    return REGISTRY.get_sample_value("socialpipe_profile_cache_errors_total", labels) or 0.0


async def test_profiles_are_served_from_postgresql_and_changes_refused_with_503(
    api: Api, db: asyncpg.Pool
) -> None:
    # GIVEN a user with a headline
    token, me = await api.register("down@example.com")
    await db.execute(
        "UPDATE user_profiles SET headline = 'Engineer' WHERE user_id = $1", uuid.UUID(me)
    )
    failures = read_failures()
    # WHEN her profile is read while Redis cannot be reached
    data = await api.ok(PROFILE, {"u": me}, token)
    # THEN PostgreSQL serves it, and the failure is counted
    assert data["profile"] == {"fullName": "Ada Lovelace", "headline": "Engineer"}
    assert read_failures() == failures + 1
    # AND a change is refused with 503 and Retry-After, and nothing of it is written
    status, body = await api.call(UPDATE, {"i": {"headline": "Lost?"}}, token)
    assert status == 503, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert body["errors"][0]["message"] == PROFILE_CHANGES_PAUSED
    assert (await api.ok(PROFILE, {"u": me}, token))["profile"]["headline"] == "Engineer"
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
