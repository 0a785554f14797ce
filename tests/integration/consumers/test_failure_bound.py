"""The number of calls a message can make on a failing dependency is bounded.

One layer retries in process (the runtime's invoker: 1 call + `inprocess_retries`
retries), the queue redelivers up to `max_receive_count` times, then the message
is dead-lettered with a reason naming the operation that failed. With the
defaults that is 4 x 4 = 16 calls, for every pipeline; these tests count them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from config.settings import Settings
from config.worker import consumer_options
from consumers.publish import send_raw
from consumers.runtime import SqsConsumer
from consumers.topology import Topology, ensure_topology
from contracts.events import Envelope
from contracts.failures import POSTGRES, boundary
from contracts.outcomes import EventHandler
from pipelines.feed.breaker import CircuitBreaker
from pipelines.feed.distribution import Distributor
from pipelines.feed.enrichment import ConnectionLookup
from pipelines.feed.handler import FeedHandler
from pipelines.feed.redis_cache import RedisConnectionCache
from pipelines.feed.redis_feeds import RedisFeedStore
from pipelines.notifications.handler import NotificationsHandler
from pipelines.notifications.plan import Notification
from pipelines.notifications.redis_counters import RedisUnreadCounters
from pipelines.search.handler import SearchHandler
from store.profiles import ProfileBatch
from tests.factories import connection_requested, post_created, profile_updated
from tests.fakes import FakeConnectionSource
from tests.integration.consumers.helpers import attrs, drain
from tests.search_fakes import FakeSearchIndex
from tests.settings import SettingsFactory


class _TimesOut:
    """A dependency call that always times out, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def fail(self) -> None:
        self.calls += 1
        raise TimeoutError("the dependency did not answer in time")


class _SlowPosts(FakeConnectionSource):
    def __init__(self, dependency: _TimesOut) -> None:
        super().__init__()
        self.dependency = dependency

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        # The same boundary as the PostgreSQL adapter's (store/connections.py).
        with boundary(f"Checking post {post_id} in PostgreSQL", dependency=POSTGRES):
            self.dependency.fail()
        return True


class _SlowStore:
    def __init__(self, dependency: _TimesOut) -> None:
        self.dependency = dependency

    async def save(self, notification: Notification) -> bool:
        # The same boundary as the PostgreSQL adapter's (pipelines/notifications/postgres.py).
        with boundary(
            f"Saving notification {notification.event_id} in PostgreSQL", dependency=POSTGRES
        ):
            self.dependency.fail()
        return True


def _feed(redis: Any, dependency: _TimesOut) -> EventHandler:
    breaker = CircuitBreaker(
        "bound", failure_rate=0.5, window_seconds=60, min_calls=10, call_timeout=2, open_seconds=30
    )
    source = _SlowPosts(dependency)
    return FeedHandler(
        lookup=ConnectionLookup(
            source, RedisConnectionCache(redis, fresh_ttl=60, stale_ttl=600), breaker
        ),
        posts=source,
        distributor=Distributor(
            RedisFeedStore(redis, max_length=800, marker_ttl=3600), parallelism=1
        ),
        batch_size=1000,
        marker_ttl=86_400,
    )


def _search(dependency: _TimesOut) -> EventHandler:
    async def load(user_ids: Sequence[uuid.UUID]) -> ProfileBatch:
        dependency.fail()
        raise AssertionError("unreachable")

    return SearchHandler(load, FakeSearchIndex())


def _notifications(redis: Any, dependency: _TimesOut) -> EventHandler:
    return NotificationsHandler(_SlowStore(dependency), RedisUnreadCounters(redis))


CASES: dict[str, tuple[str, str, Callable[[], Envelope]]] = {
    "feed": ("feed-fanout", "Checking post", lambda: post_created()),
    "search": ("search-indexing", "Loading 1 profiles from PostgreSQL", lambda: profile_updated()),
    "notifications": ("notifications", "Saving notification", lambda: connection_requested()),
}


@pytest.mark.parametrize("pipeline", sorted(CASES))
async def test_an_always_failing_dependency_is_called_a_bounded_number_of_times(
    pipeline: str,
    aws: str,
    sqs: Any,
    sns: Any,
    redis_client: Any,
    database_url: str,
    settings_factory: SettingsFactory,
) -> None:
    # GIVEN a pipeline whose dependency always times out, and one event on its queue
    settings = settings_factory(aws_endpoint_url=aws, pollers=1, retry_base_seconds=0.2)
    queue, operation, make_event = CASES[pipeline]
    dependency = _TimesOut()
    handlers: dict[str, Callable[[], EventHandler]] = {
        "feed": lambda: _feed(redis_client, dependency),
        "search": lambda: _search(dependency),
        "notifications": lambda: _notifications(redis_client, dependency),
    }
    handler = handlers[pipeline]()
    topo = await ensure_topology(sqs, sns, settings)
    event = make_event()
    await send_raw(sqs, topo.queue_url(queue), event.to_json(), event.attributes())

    # WHEN its worker runs until the queue is drained
    await asyncio.wait_for(_consumer(sqs, settings, topo, queue, handler).run(burst=True), 90)

    # THEN the dependency was called (1 + retries) x receives times, no more
    per_receive = settings.inprocess_retries + 1
    assert dependency.calls == per_receive * settings.max_receive_count == 16
    # AND the dead letter names the operation that failed
    (dead,) = await drain(sqs, topo.dlq_url(queue))
    reason = attrs(dead)["errorMessage"]
    assert reason.startswith(operation), reason
    assert "did not answer in time" in reason


def _consumer(
    sqs: Any, settings: Settings, topo: Topology, queue: str, handler: EventHandler
) -> SqsConsumer:
    return SqsConsumer(
        sqs,
        queue_name=queue,
        queue_url=topo.queue_url(queue),
        dlq_url=topo.dlq_url(queue),
        handler=handler,
        options=consumer_options(settings),
        concurrency=2,
    )
