"""`ConnectionLookup(arrange=…)`: a list read from the source is arranged once, then
cached and served in that order (a cluster's slot order, config/feed.py)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from pipelines.feed.enrichment import ConnectionLookup
from tests.fakes import FakeConnectionCache, connections_breaker
from tests.unit.pipelines.feed.test_post_and_connections import CombinedSource


def reversed_ids(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    return sorted(ids, reverse=True)


def make_lookup() -> tuple[ConnectionLookup, CombinedSource, FakeConnectionCache, uuid.UUID]:
    source, cache = CombinedSource(), FakeConnectionCache()
    author = uuid.uuid4()
    source.connect(author, *(uuid.uuid4() for _ in range(5)))
    lookup = ConnectionLookup(source, cache, connections_breaker(), arrange=reversed_ids)
    return lookup, source, cache, author


@pytest.mark.parametrize("path", ["connections", "connections_of_post"])
async def test_a_source_read_is_arranged_then_cached_and_served_in_that_order(
    path: str,
) -> None:
    # GIVEN a lookup that arranges lists, and nothing cached
    lookup, source, cache, author = make_lookup()
    expected = reversed_ids(await source.accepted_connections(author))

    async def read() -> Sequence[uuid.UUID] | None:
        if path == "connections":
            return await lookup.connections(author)
        return await lookup.connections_of_post(uuid.uuid4(), author, source)

    # WHEN the list is read twice
    first, second = await read(), await read()

    # THEN the source's answer came back arranged, was cached so, and the second
    # read was served from the cache in the same order
    assert list(first or []) == expected
    assert cache.fresh[author] == cache.stale[author] == expected
    assert list(second or []) == expected
    assert source.calls == 2  # the one above and the first read; the second hit the cache
