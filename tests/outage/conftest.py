"""Fixtures over private servers that outage tests may stop, crash and restart.

The servers start once per test session (`outage_redis`, `outage_postgres`)
and stop at its end, failed or not. Tests use the function-scoped
`stoppable_redis` / `stoppable_postgres`, which hand over the server running
and empty whatever the previous test did to it, and `outage_settings` for
Settings pointing at both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from config.settings import Settings
from store.migrate import upgrade
from tests.outage.servers import OUTAGE_DATABASE, StoppablePostgres, StoppableRedis
from tests.settings import SettingsFactory, make_settings


@pytest.fixture(scope="session")
def outage_redis() -> Iterator[StoppableRedis]:
    """The session's private Redis; prefer `stoppable_redis` in tests."""
    server = StoppableRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
async def outage_postgres() -> AsyncIterator[StoppablePostgres]:
    """The session's private PostgreSQL, migrated database OUTAGE_DATABASE included."""
    server = StoppablePostgres()
    try:
        server.start()
        await upgrade(server.url(OUTAGE_DATABASE))
        yield server
    finally:
        server.close()


@pytest.fixture
def stoppable_redis(outage_redis: StoppableRedis) -> StoppableRedis:
    """The private Redis, running and without keys."""
    outage_redis.ensure_empty()
    return outage_redis


@pytest.fixture
async def stoppable_postgres(outage_postgres: StoppablePostgres) -> StoppablePostgres:
    """The private PostgreSQL, running, with OUTAGE_DATABASE's tables empty."""
    await outage_postgres.ensure_empty(OUTAGE_DATABASE)
    return outage_postgres


@pytest.fixture
def outage_database_url(stoppable_postgres: StoppablePostgres) -> str:
    return stoppable_postgres.url(OUTAGE_DATABASE)


@pytest.fixture
def outage_settings(stoppable_redis: StoppableRedis, outage_database_url: str) -> SettingsFactory:
    """Builds test Settings (`settings_factory`'s) over the private servers."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": outage_database_url,
            "redis_url": stoppable_redis.url,
        }
        values.update(overrides)
        return make_settings(**values)

    return build
