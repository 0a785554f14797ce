from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from config.settings import Settings
from consumers.topology import Topology, ensure_topology
from tests.integration.connections_service.servers import ServiceFactory, ServiceProcess


@pytest.fixture(scope="session")
def connections_service(database_url: str) -> Iterator[ServiceProcess]:
    """One service process for the session, over the session's test database."""
    service = ServiceProcess(database_url).start()
    yield service
    service.close()


@pytest.fixture
def service_factory(database_url: str) -> Iterator[ServiceFactory]:
    """Builds a service process of the test's own (to kill or stop), closed after it."""
    started: list[ServiceProcess] = []

    def build(**env: str) -> ServiceProcess:
        service = ServiceProcess(database_url, **env)
        started.append(service)
        return service

    yield build
    for service in started:
        service.close()


@pytest.fixture
async def topo(sqs: Any, sns: Any, settings: Settings) -> Topology:
    return await ensure_topology(sqs, sns, settings)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s
