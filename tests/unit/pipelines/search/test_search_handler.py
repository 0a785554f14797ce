from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from consumers.classify import classify
from consumers.gate import DependencyGate
from consumers.invoke import HandlerInvoker
from contracts.errors import DependencyDown, TransientError
from contracts.failures import POSTGRES, SEARCH_INDEX
from contracts.outcomes import ACK, DeadLetter, Retry
from pipelines.search.bulk import chunked
from pipelines.search.handler import SearchHandler
from pipelines.search.ports import Tombstone, WriteReport
from store.profiles import ProfileBatch
from tests.factories import post_created, profile_updated
from tests.search_fakes import FakeProfiles, FakeSearchIndex
from transforms.search_document import UserSearchDocument


@pytest.fixture
def profiles() -> FakeProfiles:
    return FakeProfiles()


@pytest.fixture
def index() -> FakeSearchIndex:
    return FakeSearchIndex()


@pytest.fixture
def handler(profiles: FakeProfiles, index: FakeSearchIndex) -> SearchHandler:
    return SearchHandler(profiles, index)


async def test_batch_is_coalesced_by_user_and_loaded_in_one_call(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    # GIVEN ten events about two users
    a, b = profiles.put().user_id, profiles.put(full_name="Bob").user_id
    events = [profile_updated(user_id=a if i % 3 else b) for i in range(10)]
    # WHEN handled
    outcomes = await handler.handle(events)
    # THEN every event is acked, the loader ran once with each user once, one write happened
    assert outcomes == [ACK] * 10
    assert len(profiles.calls) == 1 and sorted(profiles.calls[0]) == sorted([a, b])
    assert len(index.write_calls) == 1 and len(index.write_calls[0][0]) == 2


async def test_user_without_profile_becomes_a_tombstone(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    row = profiles.put()
    await handler.handle([profile_updated(user_id=row.user_id)])
    del profiles.rows[row.user_id]
    assert await handler.handle([profile_updated(user_id=row.user_id)]) == [ACK]
    assert await index.get(row.user_id) is None


async def test_event_of_another_type_is_dead_lettered_and_the_rest_indexed(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    row = profiles.put()
    post = post_created()
    outcomes = await handler.handle([post, profile_updated(user_id=row.user_id)])
    assert isinstance(outcomes[0], DeadLetter) and "PostCreated" in outcomes[0].reason
    assert outcomes[1] == ACK and await index.get(row.user_id) is not None


async def test_an_index_failure_escapes_for_the_runtime_to_classify(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    # GIVEN an index that fails every write
    index.fail_with = TransientError("Calling OpenSearch failed: index unavailable")
    a, b = profiles.put().user_id, profiles.put().user_id
    # WHEN a batch is handled THEN the failure escapes as it was raised
    with pytest.raises(TransientError) as raised:
        await handler.handle([profile_updated(user_id=a), profile_updated(user_id=b)])
    # AND the runtime's classifier makes it a retry of the whole batch, naming the cause
    outcome = classify(raised.value)
    assert isinstance(outcome, Retry) and outcome.in_process and outcome.outage is None
    assert "index unavailable" in outcome.reason


async def test_a_refused_database_is_an_outage_naming_the_load(index: FakeSearchIndex) -> None:
    # GIVEN a loader whose PostgreSQL refuses connections
    async def refused(ids: Sequence[uuid.UUID]) -> ProfileBatch:
        raise ConnectionRefusedError("Connect call failed ('127.0.0.1', 5432)")

    handler = SearchHandler(refused, index)
    # WHEN a batch of two users is handled
    with pytest.raises(DependencyDown) as raised:
        await handler.handle([profile_updated(), profile_updated()])
    # THEN PostgreSQL is named as down, the reason names the operation, nothing was written
    assert raised.value.dependency == POSTGRES
    assert raised.value.message.startswith("Loading 2 profiles from PostgreSQL failed:")
    assert index.write_calls == []
    outcome = classify(raised.value)
    assert isinstance(outcome, Retry) and outcome.outage == POSTGRES


@dataclass
class ThrottlingIndex(FakeSearchIndex):
    """Answers the users in `throttle` as throttled (not written), once each."""

    throttle: set[uuid.UUID] = field(default_factory=set)

    async def write(
        self, docs: Sequence[UserSearchDocument], tombstones: Sequence[Tombstone] = ()
    ) -> WriteReport:
        held = [d for d in docs if d.user_id in self.throttle]
        report = await super().write(
            [d for d in docs if d.user_id not in self.throttle], tombstones
        )
        for doc in held:
            report.throttled[doc.user_id] = "OpenSearch could not take the document now (429)"
            self.throttle.discard(doc.user_id)
        return report


async def test_only_the_throttled_users_are_retried(profiles: FakeProfiles) -> None:
    # GIVEN an index that throttles B's document, and three events: A, B, B
    a, b = profiles.put().user_id, profiles.put(full_name="Bob").user_id
    index = ThrottlingIndex(throttle={b})
    handler = SearchHandler(profiles, index)
    # WHEN handled
    outcomes = await handler.handle(
        [profile_updated(user_id=a), profile_updated(user_id=b), profile_updated(user_id=b)]
    )
    # THEN A is acked, both events of B are retried with the throttling reason
    assert outcomes[0] == ACK
    assert (
        outcomes[1]
        == outcomes[2]
        == Retry("DocumentThrottled", "OpenSearch could not take the document now (429)")
    )
    assert set(index.docs) == {a}


async def test_the_invoker_sends_again_only_the_events_of_throttled_users(
    profiles: FakeProfiles,
) -> None:
    # GIVEN the same throttling index behind the runtime's invoker
    a, b = profiles.put().user_id, profiles.put(full_name="Bob").user_id
    index = ThrottlingIndex(throttle={b})
    handler = SearchHandler(profiles, index)
    gate = DependencyGate(handler.dependencies, queue="search-indexing")
    invoker = HandlerInvoker(handler, queue_name="q", gate=gate, attempts=3, retry_base=0.0)
    # WHEN the batch is run
    outcomes = await invoker.run([profile_updated(user_id=a), profile_updated(user_id=b)])
    # THEN both end acked, and the second call loaded and wrote B alone
    assert outcomes == [ACK, ACK]
    assert [sorted(c) for c in profiles.calls] == [sorted([a, b]), [b]]
    assert [[d.user_id for d in docs] for docs, _ in index.write_calls] == [[a], [b]]
    await gate.close()


def test_chunks_respect_count_and_bytes() -> None:
    sizes = [5, 5, 5, 20, 1, 1, 1]
    chunks = list(chunked(sizes, max_count=3, max_bytes=12, size_of=lambda s: s))
    assert chunks == [[5, 5], [5], [20], [1, 1, 1]]


async def test_wait_ready_returns_at_once_and_the_index_is_a_probed_dependency(
    index: FakeSearchIndex, handler: SearchHandler
) -> None:
    # GIVEN an index that does not answer
    index.fail_with = OSError("down")
    # WHEN the handler is asked whether it is ready THEN it does not wait: the
    # runtime's gate probes its dependencies instead
    await asyncio.wait_for(handler.wait_ready(), timeout=0.1)
    # AND the search index is its dependency, whose probe fails while it is down
    assert list(handler.dependencies) == [SEARCH_INDEX]
    with pytest.raises(OSError, match="down"):
        await handler.dependencies[SEARCH_INDEX]()
    index.fail_with = None
    await handler.dependencies[SEARCH_INDEX]()
