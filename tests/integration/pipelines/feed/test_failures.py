"""The feed handler when its dependencies fail: Redis, the connection source."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.errors import DependencyDown, DependencyUnavailable, TransientError
from contracts.keys import connections_cache_key
from contracts.outcomes import ACK, Retry
from pipelines.feed.breaker import BreakerState, CircuitBreaker
from pipelines.feed.distribution import Distributor
from pipelines.feed.enrichment import ConnectionLookup
from pipelines.feed.handler import FeedHandler
from pipelines.feed.ports import BatchResult, FeedStore
from pipelines.feed.redis_cache import RedisConnectionCache
from pipelines.feed.redis_feeds import RedisFeedStore
from tests.factories import post_created
from tests.fakes import FakeClock, FakeConnectionSource, FlakyFeedStore
from tests.integration.outcomes import outcomes_of
from tests.integration.pipelines.feed.helpers import build, feed, post_id
from tests.settings import PortFactory

BREAKER = {"breaker_min_calls": 2, "breaker_open_seconds": 30.0, "breaker_call_timeout": 0.2}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


def people(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def lookup(
    source: FakeConnectionSource, client: redis_asyncio.Redis, clock: FakeClock
) -> ConnectionLookup:
    breaker = CircuitBreaker(
        "test-connections",
        failure_rate=0.5,
        window_seconds=60,
        min_calls=2,
        call_timeout=0.2,
        open_seconds=30,
        clock=clock,
    )
    cache = RedisConnectionCache(client, fresh_ttl=300, stale_ttl=86_400)
    return ConnectionLookup(source, cache, breaker)


class TimingOutOnceFeedStore:
    """Wraps a `FeedStore`; the first push times out (a hiccup, not an outage)."""

    def __init__(self, inner: FeedStore) -> None:
        self._inner = inner
        self.calls = 0

    async def push_batch(
        self,
        post_id: uuid.UUID,
        recipients: Sequence[uuid.UUID],
        *,
        digest: str,
        owner: str,
        careful: bool,
    ) -> BatchResult:
        self.calls += 1
        if self.calls == 1:
            raise RedisTimeoutError("Timeout reading from socket (injected).")
        return await self._inner.push_batch(
            post_id, recipients, digest=digest, owner=owner, careful=careful
        )

    async def head(self, user_id: uuid.UUID, count: int) -> list[uuid.UUID]:
        return await self._inner.head(user_id, count)

    async def careful_until(self) -> float:
        return await self._inner.careful_until()


def handler_on(
    store: FeedStore, source: FakeConnectionSource, client: redis_asyncio.Redis
) -> FeedHandler:
    return FeedHandler(
        lookup=lookup(source, client, FakeClock()),
        posts=source,
        distributor=Distributor(store, parallelism=2),
        batch_size=2,
        marker_ttl=86_400,
        dependencies={"Redis": client.ping},
    )


async def test_redis_timing_out_once_is_retried_in_process_and_completes(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a feed store whose first push times out
    author, *friends = people(5)
    source = FakeConnectionSource()
    source.connect(author, *friends)
    store = TimingOutOnceFeedStore(RedisFeedStore(redis_client, max_length=800, marker_ttl=86_400))
    handler = handler_on(store, source, redis_client)
    event = post_created(author_id=author)

    # WHEN handled through the invoker, which may call twice
    outcomes = await outcomes_of(handler, [event], attempts=2)

    # THEN the second call (each of the 2 batches pushed again) completes the fan-out,
    # with one entry in each feed
    assert outcomes == [ACK]
    assert store.calls >= 3
    for friend in friends:
        assert await feed(redis_client, friend) == [post_id(event)]


async def test_redis_connection_dropped_once_is_an_outage_retry_then_success(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a feed store whose first push fails with a connection error
    author, *friends = people(5)
    source = FakeConnectionSource()
    source.connect(author, *friends)
    flaky = FlakyFeedStore(RedisFeedStore(redis_client, max_length=800, marker_ttl=86_400), 1)
    handler = handler_on(flaky, source, redis_client)
    event = post_created(author_id=author)

    # WHEN handled through the invoker, which may call three times
    [first] = await outcomes_of(handler, [event], attempts=3)

    # THEN it is a retry for a Redis outage naming what failed, not retried in process
    # (a second call would have succeeded)
    assert isinstance(first, Retry)
    assert first.error_type == "DependencyDown"
    assert first.outage == "Redis"
    assert first.reason.startswith("Handling the event failed: Connection reset by peer")
    assert flaky.failures == 0

    # WHEN the event is delivered again THEN it completes with one entry each
    assert await handler.handle([event]) == [ACK]
    for friend in friends:
        assert await feed(redis_client, friend) == [post_id(event)]


async def test_open_breaker_falls_back_to_stale_cache(
    redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    # GIVEN an author whose list was cached once, whose fresh copy then expired
    author, *friends = people(3)
    source = FakeConnectionSource()
    source.connect(author, *friends)
    clock = FakeClock()
    handler = await build(stack, redis_client, source=source, clock=clock, **BREAKER)
    assert await handler.handle([post_created(author_id=author)]) == [ACK]
    await redis_client.delete(connections_cache_key(author))

    # WHEN the source goes down (1 success + 1 failure = 50 % of 2 calls: it opens)
    source.down = True
    outcomes = [await handler.handle([post_created(author_id=author)]) for _ in range(3)]

    # THEN every post still reaches the connections through the stale copy,
    # and the last two did not even reach the source
    assert outcomes == [[ACK]] * 3
    assert source.calls == 2
    for friend in friends:
        assert len(await feed(redis_client, friend)) == 4


async def test_open_breaker_without_cache_retries_and_pauses_until_half_open(
    redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    # GIVEN a connection source that is down and nothing cached
    author = uuid.uuid4()
    source = FakeConnectionSource()
    source.down = True
    clock = FakeClock()
    handler = await build(stack, redis_client, source=source, clock=clock, **BREAKER)

    # WHEN posts are handled until the breaker opens
    outcomes = [(await outcomes_of(handler, [post_created(author_id=author)]))[0] for _ in range(3)]

    # THEN each is a retry for a PostgreSQL outage, the last refused by the open
    # breaker without a source call
    assert all(isinstance(o, Retry) and o.outage == "PostgreSQL" for o in outcomes)
    assert [o.error_type for o in outcomes] == [  # type: ignore[union-attr]
        "DependencyDown",
        "DependencyDown",
        DependencyUnavailable.error_type,
    ]
    assert "breaker 'connections' is open" in outcomes[-1].reason  # type: ignore[union-attr]
    assert source.calls == 2

    # AND wait_ready blocks until the open period has passed
    waiter = asyncio.create_task(handler.wait_ready())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    clock.advance(30)
    await asyncio.wait_for(waiter, timeout=5)

    # AND once the source is back, the half-open trial succeeds and the post goes out
    source.down = False
    friend = uuid.uuid4()
    source.connect(author, friend)
    assert await handler.handle([post_created(author_id=author)]) == [ACK]
    assert len(await feed(redis_client, friend)) == 1


async def test_slow_source_times_out_and_counts_as_failure(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a source slower than the 0.2 s call timeout
    source = FakeConnectionSource()
    source.delay = 1.0
    clock = FakeClock()
    look = lookup(source, redis_client, clock)

    # WHEN read twice
    for _ in range(2):
        with pytest.raises(TransientError, match=r"Reading the connections of user .* failed") as e:
            await look.connections(uuid.uuid4())

        # THEN each read fails as a transient timeout, not as an outage
        assert e.value.error_type == "TimeoutError"
        assert not isinstance(e.value, DependencyDown)

    # AND the breaker opened
    assert look._breaker.state is BreakerState.OPEN


async def test_script_is_reloaded_after_script_flush(redis_client: redis_asyncio.Redis) -> None:
    # GIVEN a store that loaded its script, then Redis forgot all scripts
    store = RedisFeedStore(redis_client, max_length=10, marker_ttl=3600)
    user = uuid.uuid4()
    await store.push_batch(uuid.uuid4(), [user], digest="a", owner="o", careful=False)
    await redis_client.script_flush()

    # WHEN pushing again
    post = uuid.uuid4()
    result = await store.push_batch(post, [user], digest="b", owner="o", careful=False)

    # THEN it worked
    assert result.written == 1
    assert (await store.head(user, 1)) == [post]


async def test_unreachable_redis_gives_an_outage_retry_not_a_crash(
    stack: AsyncExitStack,
    port_factory: PortFactory,
) -> None:
    # GIVEN a handler whose Redis does not answer (nothing listens on the port)
    source = FakeConnectionSource()
    author = uuid.uuid4()
    source.connect(author, uuid.uuid4())
    dead = redis_asyncio.Redis.from_url(f"redis://127.0.0.1:{port_factory()}/0", socket_timeout=1)
    stack.push_async_callback(dead.aclose)
    handler = await build(stack, dead, source=source)

    # WHEN a post is handled through the invoker
    [outcome] = await asyncio.wait_for(outcomes_of(handler, [post_created(author_id=author)]), 10)

    # THEN the message is retried for a Redis outage, naming the operation that failed
    assert isinstance(outcome, Retry)
    assert outcome.error_type == "DependencyDown"
    assert outcome.outage == "Redis"
    assert outcome.reason.startswith("Reading cached connections from Redis failed: ")


async def test_read_racing_with_an_invalidation_is_not_cached(
    redis_client: redis_asyncio.Redis,
) -> None:
    # GIVEN a source read during which the author accepts a new connection
    author, old_friend, new_friend = people(3)
    source = FakeConnectionSource()
    source.connect(author, old_friend)
    look = lookup(source, redis_client, FakeClock())

    async def accept_meanwhile() -> None:
        source.during_read = None
        source.connect(author, new_friend)
        await look.invalidate(author, new_friend)

    source.during_read = accept_meanwhile

    # WHEN the read finishes with the list from before the acceptance
    assert await look.connections(author) == [old_friend]

    # THEN it was not cached, and the next read sees the new connection
    assert not await redis_client.exists(connections_cache_key(author))
    assert sorted(await look.connections(author)) == sorted([old_friend, new_friend])
    assert await redis_client.exists(connections_cache_key(author))
