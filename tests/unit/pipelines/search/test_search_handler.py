from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts.errors import TransientError
from contracts.events import Envelope, PostCreated, UserProfileUpdated, new_envelope, utcnow
from contracts.outcomes import ACK, DeadLetter, Retry
from pipelines.search.bulk import chunked, with_retries
from pipelines.search.handler import SearchHandler
from tests.search_fakes import FakeProfiles, FakeSearchIndex


def updated(user_id: uuid.UUID) -> Envelope:
    return new_envelope(UserProfileUpdated(user_id=user_id, updated_at=utcnow()))


@pytest.fixture
def profiles() -> FakeProfiles:
    return FakeProfiles()


@pytest.fixture
def index() -> FakeSearchIndex:
    return FakeSearchIndex()


@pytest.fixture
def handler(profiles: FakeProfiles, index: FakeSearchIndex) -> SearchHandler:
    return SearchHandler(profiles, index, ready_poll=0.01)


async def test_batch_is_coalesced_by_user_and_loaded_in_one_call(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    # GIVEN ten events about two users
    a, b = profiles.put().user_id, profiles.put(full_name="Bob").user_id
    events = [updated(a if i % 3 else b) for i in range(10)]
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
    await handler.handle([updated(row.user_id)])
    del profiles.rows[row.user_id]
    assert await handler.handle([updated(row.user_id)]) == [ACK]
    assert await index.get(row.user_id) is None


async def test_event_of_another_type_is_dead_lettered_and_the_rest_indexed(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    row = profiles.put()
    created = PostCreated(post_id=uuid.uuid4(), author_id=uuid.uuid4(), created_at=utcnow())
    post = new_envelope(created)
    outcomes = await handler.handle([post, updated(row.user_id)])
    assert isinstance(outcomes[0], DeadLetter) and "PostCreated" in outcomes[0].reason
    assert outcomes[1] == ACK and await index.get(row.user_id) is not None


async def test_index_failure_retries_every_event_of_the_batch(
    profiles: FakeProfiles, index: FakeSearchIndex, handler: SearchHandler
) -> None:
    index.fail_with = TransientError("index unavailable")
    a, b = profiles.put().user_id, profiles.put().user_id
    outcomes = await handler.handle([updated(a), updated(b)])
    assert all(isinstance(o, Retry) for o in outcomes)
    assert "index unavailable" in outcomes[0].reason  # type: ignore[union-attr]


def test_chunks_respect_count_and_bytes() -> None:
    sizes = [5, 5, 5, 20, 1, 1, 1]
    chunks = list(chunked(sizes, max_count=3, max_bytes=12, size_of=lambda s: s))
    assert chunks == [[5, 5], [5], [20], [1, 1, 1]]


async def test_transient_failures_are_retried_then_surface_as_transient_error() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("connection reset")
        return "ok"

    assert (
        await with_retries(flaky, is_transient=lambda e: isinstance(e, OSError), base=0.001) == "ok"
    )

    async def broken() -> str:
        raise OSError("down")

    with pytest.raises(TransientError):
        await with_retries(broken, is_transient=lambda e: isinstance(e, OSError), base=0.001)


async def test_wait_ready_returns_once_the_index_answers(
    index: FakeSearchIndex, handler: SearchHandler
) -> None:
    index.fail_with = OSError("down")
    waiter = asyncio.create_task(handler.wait_ready())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    index.fail_with = None
    await asyncio.wait_for(waiter, timeout=2)
