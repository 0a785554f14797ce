"""The feed handler over a source that checks the post and reads the connections at once.

`PgConnectionSource` answers both in one statement (`post_connections`); the
handler must give the same outcomes as with the two separate reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import pytest

from config.settings import Settings
from contracts.outcomes import ACK, DeadLetter
from pipelines.feed.breaker import CircuitBreaker
from pipelines.feed.distribution import Distributor
from pipelines.feed.enrichment import ConnectionLookup
from pipelines.feed.handler import FeedHandler
from tests.factories import post_created
from tests.fakes import FakeClock, FakeConnectionCache, FakeConnectionSource, FakeFeedStore


class CombinedSource(FakeConnectionSource):
    """A fake source with the combined read; counts each kind of call."""

    def __init__(self) -> None:
        super().__init__()
        self.combined = 0
        self.checks = 0

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        self.checks += 1
        return await super().post_exists(post_id, author_id)

    async def post_connections(
        self, post_id: uuid.UUID, author_id: uuid.UUID
    ) -> Sequence[uuid.UUID] | None:
        self.combined += 1
        ids = await self.accepted_connections(author_id)
        return ids if post_id not in self.missing_posts else None


Parts = tuple[FeedHandler, CombinedSource, FakeConnectionCache, FakeFeedStore]


@pytest.fixture
def parts(settings_factory: Callable[..., Settings]) -> Parts:
    settings = settings_factory(breaker_min_calls=2, fanout_batch_size=10)
    source, cache, store = CombinedSource(), FakeConnectionCache(), FakeFeedStore()
    breaker = CircuitBreaker(
        "connections",
        failure_rate=settings.breaker_failure_rate,
        window_seconds=settings.breaker_window_seconds,
        min_calls=settings.breaker_min_calls,
        call_timeout=settings.breaker_call_timeout,
        open_seconds=settings.breaker_open_seconds,
        clock=FakeClock(),
    )
    handler = FeedHandler(
        lookup=ConnectionLookup(source, cache, breaker),
        posts=source,
        distributor=Distributor(store, parallelism=2),
        batch_size=10,
        marker_ttl=86_400,
    )
    return handler, source, cache, store


async def test_a_cold_post_is_checked_and_its_connections_read_in_one_call(parts: Parts) -> None:
    # GIVEN an author with two connections and nothing cached
    handler, source, cache, store = parts
    author, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source.connect(author, a, b)
    post = uuid.uuid4()
    # WHEN the post is handled
    assert await handler.handle([post_created(post_id=post, author_id=author)]) == [ACK]
    # THEN one combined read served it, with no separate post check, and the list is cached
    assert (source.combined, source.checks, source.calls) == (1, 0, 1)
    assert store.feeds[a] == [post] and store.feeds[b] == [post]
    assert sorted(cache.fresh[author]) == sorted([a, b])


async def test_a_cold_post_postgresql_lacks_is_dead_lettered_and_nothing_cached(
    parts: Parts,
) -> None:
    # GIVEN a post event whose post the source does not have
    handler, source, cache, store = parts
    author, friend, post = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source.connect(author, friend)
    source.missing_posts.add(post)
    # WHEN handled
    [outcome] = await handler.handle([post_created(post_id=post, author_id=author)])
    # THEN it is dead-lettered as before, no feed is written and no list is cached
    assert isinstance(outcome, DeadLetter) and outcome.error_type == "UnknownEntity"
    assert store.calls == [] and author not in cache.fresh


async def test_with_the_list_cached_only_the_post_is_checked(parts: Parts) -> None:
    # GIVEN an author whose list is cached
    handler, source, cache, _ = parts
    author, friend = uuid.uuid4(), uuid.uuid4()
    cache.put(author, [friend])
    missing = uuid.uuid4()
    source.missing_posts.add(missing)
    # WHEN a post of theirs and a post PostgreSQL lacks are handled
    assert await handler.handle([post_created(author_id=author)]) == [ACK]
    [outcome] = await handler.handle([post_created(post_id=missing, author_id=author)])
    # THEN each was checked on its own, the source's list was never read
    assert isinstance(outcome, DeadLetter)
    assert (source.checks, source.combined, source.calls) == (2, 0, 0)


async def test_a_failed_combined_read_checks_the_post_and_serves_the_stale_list(
    parts: Parts,
) -> None:
    # GIVEN an author with only a stale copy cached, and a source failing its next read
    handler, source, cache, store = parts
    author, friend, post = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.stale[author] = [friend]
    source.fail_next = 1
    # WHEN a post of theirs is handled
    assert await handler.handle([post_created(post_id=post, author_id=author)]) == [ACK]
    # THEN the post was checked on its own and the stale list served
    assert source.checks == 1 and store.feeds[friend] == [post]
