from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from config.settings import Settings
from consumers.topology import Topology, ensure_topology
from tests.settings import SettingsFactory


@pytest.fixture
async def topo(sqs: Any, sns: Any, settings: Settings) -> Topology:
    return await ensure_topology(sqs, sns, settings)


@pytest.fixture
def worker_settings(settings: Settings, settings_factory: SettingsFactory) -> Settings:
    """One poller, so receive counts are exact (moto receives are not atomic)."""
    return settings_factory(aws_endpoint_url=settings.aws_endpoint_url, pollers=1)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


@pytest.fixture
def feed_worker_settings(
    settings: Settings, settings_factory: SettingsFactory, feed_redis_url: str
) -> Settings:
    """`worker_settings` on `feed_redis`: the test runs on one node, then on the cluster."""
    return settings_factory(
        aws_endpoint_url=settings.aws_endpoint_url, pollers=1, redis_url=feed_redis_url
    )
