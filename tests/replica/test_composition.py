"""Composition roots with and without DATABASE_READ_URL: the pools they open, what reads where.

No server is started: `create_pool` is replaced by a recorder of fake pools.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

import config.feed
import config.reconcile
import config.search
from config.feed import build_feed_handler
from config.reconcile import build_feed_reconciler, build_search_reconciler
from config.search import build_search_handler
from config.settings import Settings
from reconcile.feeds import FeedReconcileOptions
from reconcile.search import SearchReconcileOptions
from store.connections import PgConnectionSource, RoutedConnectionSource
from store.profiles import RoutedProfileLoader

PRIMARY = "postgresql://postgres@127.0.0.1:1/primary"
REPLICA = "postgresql://postgres@127.0.0.1:2/replica"


class FakePool:
    def __init__(self, url: str) -> None:
        self.url = url
        self.closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FakePool]:
    """Every pool the composition roots open, in order."""
    pools: list[FakePool] = []

    async def create_pool(url: str, **_options: Any) -> FakePool:
        pools.append(FakePool(url))
        return pools[-1]

    for module in (config.feed, config.search):
        monkeypatch.setattr(module, "create_pool", create_pool)
    return pools


def settings(read_url: str | None) -> Settings:
    return Settings(
        database_url=PRIMARY,
        database_read_url=read_url,
        redis_url="redis://127.0.0.1:1/0",
        search_backend="postgres",
    )


async def test_feed_without_read_url_opens_one_pool_and_reads_it(opened: list[FakePool]) -> None:
    async with AsyncExitStack() as stack:
        handler = await build_feed_handler(stack, settings(None))
        assert [p.url for p in opened] == [PRIMARY]
        assert isinstance(handler._posts, PgConnectionSource)
        assert handler._posts._pool is opened[0]
    assert all(p.closed for p in opened)


async def test_feed_with_read_url_reads_the_replica_behind_a_router(
    opened: list[FakePool],
) -> None:
    async with AsyncExitStack() as stack:
        handler = await build_feed_handler(stack, settings(REPLICA))
        assert [p.url for p in opened] == [PRIMARY, REPLICA]
        source = handler._posts
        assert isinstance(source, RoutedConnectionSource)
        assert source._router.primary._pool is opened[0]
        assert source._router.reader._pool is opened[1]
    assert all(p.closed for p in opened)


async def test_search_without_read_url_keeps_the_plain_loader(opened: list[FakePool]) -> None:
    async with AsyncExitStack() as stack:
        handler = await build_search_handler(stack, settings(None))
        assert [p.url for p in opened] == [PRIMARY]
        assert handler._versioned is None
        assert handler.index.pool is opened[0]  # type: ignore[attr-defined]


async def test_search_with_read_url_loads_routed_and_writes_the_primary(
    opened: list[FakePool],
) -> None:
    async with AsyncExitStack() as stack:
        handler = await build_search_handler(stack, settings(REPLICA))
        assert [p.url for p in opened] == [PRIMARY, REPLICA]
        assert isinstance(handler.load, RoutedProfileLoader)
        assert handler._versioned is handler.load
        assert handler.index.pool is opened[0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("read_url", [None, REPLICA])
async def test_reconcilers_scan_the_read_url_and_check_on_the_primary(
    opened: list[FakePool], read_url: str | None
) -> None:
    async with AsyncExitStack() as stack:
        search = await build_search_reconciler(stack, settings(read_url), SearchReconcileOptions())
        feeds = await build_feed_reconciler(stack, settings(read_url), FeedReconcileOptions())
    urls = [p.url for p in opened]
    assert urls == ([PRIMARY] if read_url is None else [PRIMARY, REPLICA]) * 2
    scan = opened[1] if read_url else opened[0]
    assert search._pool is scan and search._primary is opened[0]
    assert feeds._pool is opened[-1] and feeds._primary is opened[-2 if read_url else -1]
