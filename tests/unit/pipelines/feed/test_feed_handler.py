"""The feed handler over fakes: no Redis, no PostgreSQL.

A real `Distributor` and a real `CircuitBreaker` (on a `FakeClock`) run over the
shared fakes: `FakeConnectionSource`, `FakeConnectionCache`, `FakeFeedStore`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from config.settings import Settings
from contracts.errors import DependencyDown, DependencyUnavailable, TransientError
from contracts.events import utcnow
from contracts.failures import POSTGRES
from contracts.outcomes import ACK, DeadLetter, Retry
from pipelines.feed.breaker import BreakerState, CircuitBreaker
from pipelines.feed.distribution import Distributor
from pipelines.feed.enrichment import ConnectionLookup
from pipelines.feed.handler import FeedHandler
from tests.factories import connection_accepted, post_created
from tests.fakes import FakeClock, FakeConnectionCache, FakeConnectionSource, FakeFeedStore


@dataclass
class Feed:
    """A feed handler and the fakes behind it."""

    handler: FeedHandler
    source: FakeConnectionSource
    cache: FakeConnectionCache
    store: FakeFeedStore
    breaker: CircuitBreaker
    clock: FakeClock


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    # Two failed reads open the breaker, for 30 s; one recipient per batch.
    return settings_factory(
        breaker_min_calls=2,
        breaker_open_seconds=30.0,
        breaker_call_timeout=0.05,
        fanout_batch_size=1,
        fanout_marker_ttl=86_400,
    )


@pytest.fixture
def feed(settings: Settings) -> Feed:
    source, cache, store, clock = (
        FakeConnectionSource(),
        FakeConnectionCache(),
        FakeFeedStore(),
        FakeClock(),
    )
    breaker = CircuitBreaker(
        "connections",
        failure_rate=settings.breaker_failure_rate,
        window_seconds=settings.breaker_window_seconds,
        min_calls=settings.breaker_min_calls,
        call_timeout=settings.breaker_call_timeout,
        open_seconds=settings.breaker_open_seconds,
        clock=clock,
    )
    handler = FeedHandler(
        lookup=ConnectionLookup(source, cache, breaker),
        posts=source,
        distributor=Distributor(store, parallelism=settings.fanout_parallelism),
        batch_size=settings.fanout_batch_size,
        marker_ttl=settings.fanout_marker_ttl,
    )
    return Feed(handler, source, cache, store, breaker, clock)


def people(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


async def open_breaker(feed: Feed, author: uuid.UUID) -> None:
    """Fail reads of the source until the breaker opens (two, with these settings)."""
    feed.source.down = True
    for _ in range(2):
        with pytest.raises(DependencyDown):
            await feed.handler.handle([post_created(author_id=author)])
    assert feed.breaker.state is BreakerState.OPEN


async def test_every_accepted_connection_gets_the_post_and_nobody_else(feed: Feed) -> None:
    # GIVEN an author with three connections, and a stranger connected to someone else
    author, stranger, (a, b, c) = uuid.uuid4(), uuid.uuid4(), people(3)
    feed.source.connect(author, a, b, c)
    feed.source.connect(stranger, a)
    post = uuid.uuid4()
    # WHEN the post is handled
    outcomes = await feed.handler.handle([post_created(post_id=post, author_id=author)])
    # THEN it is acked and exactly the three connections hold the post, once each
    assert outcomes == [ACK]
    assert {user for user, posts in feed.store.feeds.items() if posts} == {a, b, c}
    assert all(feed.store.feeds[user] == [post] for user in (a, b, c))
    assert author not in feed.store.feeds and stranger not in feed.store.feeds


async def test_a_post_postgresql_lacks_is_dead_lettered_and_nothing_is_written(
    feed: Feed,
) -> None:
    # GIVEN a post event whose post PostgreSQL does not have
    author, friend = uuid.uuid4(), uuid.uuid4()
    feed.source.connect(author, friend)
    post = uuid.uuid4()
    feed.source.missing_posts.add(post)
    # WHEN it is handled
    [outcome] = await feed.handler.handle([post_created(post_id=post, author_id=author)])
    # THEN it is dead-lettered as an unknown entity; connections were not even read
    assert isinstance(outcome, DeadLetter) and outcome.error_type == "UnknownEntity"
    assert "does not exist in PostgreSQL" in outcome.reason
    assert feed.store.calls == [] and feed.source.calls == 0


async def test_a_fresh_first_delivery_is_distributed_without_checking_feeds(feed: Feed) -> None:
    # GIVEN a new post event, delivered for the first time, with no careful mark
    author = uuid.uuid4()
    feed.source.connect(author, *people(2))
    # WHEN handled THEN every push skips the check
    assert await feed.handler.handle([post_created(author_id=author)]) == [ACK]
    assert feed.store.careful == [False, False]


async def test_a_redelivered_event_is_distributed_carefully(feed: Feed) -> None:
    # GIVEN a post event the queue delivers again
    author = uuid.uuid4()
    feed.source.connect(author, *people(2))
    event = post_created(author_id=author).as_redelivery()
    # WHEN handled THEN every push checks the feed for the post first
    assert await feed.handler.handle([event]) == [ACK]
    assert feed.store.careful == [True, True]


async def test_an_event_older_than_the_marker_ttl_margin_is_distributed_carefully(
    feed: Feed, settings: Settings
) -> None:
    # GIVEN a post event as old as the fan-out marker's TTL: its marker may be gone
    author = uuid.uuid4()
    feed.source.connect(author, *people(2))
    old = utcnow() - timedelta(seconds=settings.fanout_marker_ttl)
    # WHEN handled THEN every push checks the feed for the post first
    assert await feed.handler.handle([post_created(author_id=author, occurred_at=old)]) == [ACK]
    assert feed.store.careful == [True, True]


async def test_a_careful_mark_in_the_future_makes_the_distribution_careful(feed: Feed) -> None:
    # GIVEN reconcile's careful-until mark a minute ahead
    author = uuid.uuid4()
    feed.source.connect(author, *people(2))
    feed.store.careful_mark = time.time() + 60
    # WHEN a new post is handled THEN every push checks the feed first
    assert await feed.handler.handle([post_created(author_id=author)]) == [ACK]
    assert feed.store.careful == [True, True]


async def test_a_broken_feed_is_retried_by_name_and_the_next_call_writes_only_it(
    feed: Feed,
) -> None:
    # GIVEN three connections, one of whose feeds cannot be written
    author, (a, broken, c) = uuid.uuid4(), people(3)
    feed.source.connect(author, a, broken, c)
    feed.store.broken.add(broken)
    post = uuid.uuid4()
    event = post_created(post_id=post, author_id=author)
    # WHEN handled
    [outcome] = await feed.handler.handle([event])
    # THEN the fan-out is retried, naming the user whose feed failed
    assert isinstance(outcome, Retry) and outcome.error_type == "FanoutIncomplete"
    assert str(broken) in outcome.reason and "1 of 3 feeds" in outcome.reason
    # AND once the feed is writable, the next call writes it alone
    feed.store.broken.clear()
    pushed = len(feed.store.calls)
    assert await feed.handler.handle([event]) == [ACK]
    assert all(feed.store.feeds[user] == [post] for user in (a, broken, c))
    assert len(feed.store.calls) - pushed == 3 and len(feed.store.done) == 3


async def test_connection_accepted_invalidates_both_users_cached_lists(feed: Feed) -> None:
    # GIVEN cached lists for two users about to connect
    a, b = uuid.uuid4(), uuid.uuid4()
    feed.cache.put(a, [])
    feed.cache.put(b, [])
    feed.source.connect(a, b)
    # WHEN their connection is accepted
    accepted = connection_accepted(requester_id=a, addressee_id=b)
    assert await feed.handler.handle([accepted]) == [ACK]
    # THEN neither fresh list is cached any more (the stale copies stay as fallback)
    assert (await feed.cache.read(a)).connections is None
    assert (await feed.cache.read(b)).connections is None
    assert feed.cache.stale == {a: [], b: []}
    # AND A's next post reaches B
    post = uuid.uuid4()
    assert await feed.handler.handle([post_created(post_id=post, author_id=a)]) == [ACK]
    assert feed.store.feeds[b] == [post]


async def test_an_open_breaker_falls_back_to_the_stale_cached_list(feed: Feed) -> None:
    # GIVEN an author whose list was cached and then invalidated (stale copy only)
    author, friend = uuid.uuid4(), uuid.uuid4()
    feed.source.connect(author, friend)
    assert await feed.handler.handle([post_created(author_id=author)]) == [ACK]
    await feed.cache.invalidate(author)
    # AND a breaker opened by another author's failing reads
    await open_breaker(feed, uuid.uuid4())
    calls = feed.source.calls
    # WHEN the author posts again
    post = uuid.uuid4()
    # THEN the stale list is used without calling the source
    assert await feed.handler.handle([post_created(post_id=post, author_id=author)]) == [ACK]
    assert feed.source.calls == calls
    assert feed.store.feeds[friend][0] == post


async def test_an_open_breaker_with_nothing_cached_is_unavailable_until_half_open(
    feed: Feed, settings: Settings
) -> None:
    # GIVEN a breaker opened by failing reads, and an author with nothing cached
    await open_breaker(feed, uuid.uuid4())
    # WHEN the author posts THEN PostgreSQL is named unavailable, and why
    with pytest.raises(DependencyUnavailable) as raised:
        await feed.handler.handle([post_created()])
    assert raised.value.dependency == POSTGRES and "none are cached" in raised.value.message
    # AND wait_ready blocks while the breaker is open
    waiting = asyncio.create_task(feed.handler.wait_ready())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # AND returns once the clock reaches half-open
    feed.clock.advance(settings.breaker_open_seconds)
    await asyncio.wait_for(waiting, timeout=2)
    assert feed.breaker.state is BreakerState.HALF_OPEN


async def test_a_refused_source_raises_an_outage_naming_the_read(feed: Feed) -> None:
    # GIVEN a connection source that refuses the next read, and nothing cached
    author = uuid.uuid4()
    feed.source.fail_next = 1
    # WHEN the author posts THEN PostgreSQL is named down, with the operation
    with pytest.raises(DependencyDown) as raised:
        await feed.handler.handle([post_created(author_id=author)])
    assert raised.value.dependency == POSTGRES
    assert raised.value.message.startswith(f"Reading the connections of user {author} failed")
    assert feed.store.calls == []


async def test_a_slow_source_raises_a_transient_error_saying_none_are_cached(
    feed: Feed,
) -> None:
    # GIVEN a connection source slower than the breaker's call timeout
    feed.source.delay = 1.0
    # WHEN a post is handled THEN a transient timeout escapes, saying no fallback exists
    with pytest.raises(TransientError) as raised:
        await feed.handler.handle([post_created()])
    assert raised.value.error_type == "TimeoutError"
    assert raised.value.message.endswith("(none are cached)")
