"""Enrichment names the source it reads: with the Connections Service as the source,
an open breaker with nothing cached pauses the worker for that service."""

from __future__ import annotations

import uuid

import pytest

from contracts.errors import DependencyDown
from contracts.failures import CONNECTIONS_SERVICE
from pipelines.feed.enrichment import ConnectionLookup
from tests.fakes import FakeConnectionCache, FakeConnectionSource, connections_breaker


def lookup(source: FakeConnectionSource, cache: FakeConnectionCache) -> ConnectionLookup:
    breaker = connections_breaker()
    return ConnectionLookup(source, cache, breaker, dependency=CONNECTIONS_SERVICE)


async def test_failures_without_a_cached_list_name_the_connections_service() -> None:
    # GIVEN a failing source and nothing cached
    source, cache = FakeConnectionSource(), FakeConnectionCache()
    source.down = True
    reader = lookup(source, cache)
    # WHEN reads fail until the breaker opens, and once more
    for _ in range(3):
        with pytest.raises(DependencyDown) as raised:
            await reader.connections(uuid.uuid4())
        # THEN each failure names the Connections Service as the dependency
        assert raised.value.dependency == CONNECTIONS_SERVICE
    assert source.calls == 2  # the third was refused by the open breaker


async def test_stale_list_serves_while_the_service_fails() -> None:
    source, cache = FakeConnectionSource(), FakeConnectionCache()
    author, friend = uuid.uuid4(), uuid.uuid4()
    cache.put(author, [friend])
    cache.fresh.clear()
    source.down = True
    assert list(await lookup(source, cache).connections(author)) == [friend]


class Service:
    """The service's health probe, up or down."""

    def __init__(self) -> None:
        self.up = False

    async def probe(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("the service is down")


async def test_probe_of_the_service_does_not_pause_while_stale_lists_serve() -> None:
    # GIVEN a service that is down, and an author whose stale list serves
    source, cache, service = FakeConnectionSource(), FakeConnectionCache(), Service()
    author = uuid.uuid4()
    cache.put(author, [uuid.uuid4()])
    cache.fresh.clear()
    source.down = True
    reader = lookup(source, cache)
    probe = reader.source_probe(service.probe)
    await reader.connections(author)
    # THEN the worker's probe of the service answers: nothing to pause for
    await probe()
    # WHEN a read finds nothing to fall back on
    with pytest.raises(DependencyDown):
        await reader.connections(uuid.uuid4())
    # THEN the probe reports the service down, until it answers again
    with pytest.raises(ConnectionRefusedError):
        await probe()
    service.up = True
    await probe()
