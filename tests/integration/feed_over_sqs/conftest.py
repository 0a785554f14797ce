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
