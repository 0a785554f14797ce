"""The search worker with DATABASE_READ_URL on a real streaming replica.

A profile the replica lacks, or holds at a version below the one the event
names, is read from the primary after a bounded wait; a user the primary lacks
too is a deletion and leaves a tombstone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from config.search import build_search_handler
from contracts.outcomes import ACK
from pipelines.search.handler import SearchHandler
from pipelines.search.postgres import PostgresSearchIndex
from tests.replica.data import (
    add_user,
    profile_updated,
    profile_version,
    reads_since,
    replica_reads,
)
from tests.replica.replication import Replication


@pytest.fixture
async def handler(replicated: Replication) -> AsyncIterator[SearchHandler]:
    async with AsyncExitStack() as stack:
        yield await build_search_handler(stack, replicated.settings())


async def indexed(db: Replication, user_id: uuid.UUID) -> tuple[int, str | None] | None:
    """(version, headline) of the user's live document, None when there is none."""
    docs = await PostgresSearchIndex(db.primary).get_many([user_id])
    doc = docs.get(user_id)
    return None if doc is None else (doc.version, doc.headline)


async def test_a_replayed_profile_is_aggregated_on_the_replica(
    replicated: Replication, handler: SearchHandler
) -> None:
    user = await add_user(replicated.primary, "Ada", headline="Engineer")
    version = await profile_version(replicated.primary, user)
    await replicated.caught_up()
    before = replica_reads("search")
    assert await handler.handle([profile_updated(user, version)]) == [ACK]
    assert await indexed(replicated, user) == (version, "Engineer")
    assert reads_since("search", before) == {
        "replica": 1,
        "replica_after_wait": 0,
        "primary_fallback": 0,
    }


async def test_a_paused_replica_falls_back_to_the_primary_then_serves_again(
    replicated: Replication, handler: SearchHandler
) -> None:
    user = await add_user(replicated.primary, "Grace", headline="Engineer")
    await replicated.caught_up()
    await replicated.pause_replay()
    await replicated.primary.execute(
        "UPDATE user_profiles SET headline = 'Admiral' WHERE user_id = $1", user
    )
    newer = await profile_version(replicated.primary, user)
    assert await profile_version(replicated.replica, user) < newer

    before = replica_reads("search")
    gone = uuid.uuid4()
    events = [profile_updated(user, newer), profile_updated(gone)]
    assert await handler.handle(events) == [ACK, ACK]
    # The primary's version, not the replica's older one.
    assert await indexed(replicated, user) == (newer, "Admiral")
    # Missing on both: a deletion, left as a tombstone (no live document).
    assert await indexed(replicated, gone) is None
    tombstone = await replicated.primary.fetchval(
        "SELECT deleted FROM search_documents WHERE user_id = $1", gone
    )
    assert tombstone is True
    assert reads_since("search", before)["primary_fallback"] == 2

    await replicated.resume_replay()
    await replicated.primary.execute(
        "UPDATE user_profiles SET headline = 'Rear Admiral' WHERE user_id = $1", user
    )
    latest = await profile_version(replicated.primary, user)
    await replicated.caught_up()
    resumed = replica_reads("search")
    assert await handler.handle([profile_updated(user, latest)]) == [ACK]
    assert await indexed(replicated, user) == (latest, "Rear Admiral")
    assert reads_since("search", resumed) == {
        "replica": 1,
        "replica_after_wait": 0,
        "primary_fallback": 0,
    }
