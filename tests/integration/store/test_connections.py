"""The PostgreSQL connection source: keyset pages over both directions."""

from __future__ import annotations

import asyncpg
import pytest

from store.connections import PgConnectionSource
from tests.integration.pipelines.feed.helpers import add_users, connect
from transforms.fanout import PackedIds


async def test_keyset_reader_returns_all_12000_connections_with_small_pages(
    db: asyncpg.Pool,
) -> None:
    # GIVEN a user with 12,000 accepted connections, 7,000 asked and 5,000 asking
    user, *others = await add_users(db, 12_001)
    await connect(db, user, others[:7000])
    async with db.acquire() as conn:
        await conn.copy_records_to_table(
            "connections",
            records=[(o, user, "accepted") for o in others[7000:]],
            columns=["requester_id", "addressee_id", "status"],
        )

    # WHEN read with pages of 977 (not a divisor, so the last page is partial)
    found = await PgConnectionSource(db, page_size=977).accepted_connections(user)

    # THEN every connection comes back once, sorted, still packed for the fan-out
    assert isinstance(found, PackedIds)
    assert found == sorted(others)


async def test_only_accepted_connections_count_and_pairs_appear_once(db: asyncpg.Pool) -> None:
    # GIVEN an accepted pair (the database refuses it accepted the other way too),
    # plus pending and declined requests
    user, twice, pending, declined, other = await add_users(db, 5)
    await connect(db, user, [twice])
    with pytest.raises(asyncpg.UniqueViolationError):
        await connect(db, twice, [user])
    await connect(db, user, [pending], status="pending")
    await connect(db, declined, [user], status="declined")
    await connect(db, other, [twice])

    # WHEN read with a page size that cuts between the duplicates
    found = await PgConnectionSource(db, page_size=1).accepted_connections(user)

    # THEN only the accepted partner, once
    assert found == [twice]


async def test_exactly_full_last_page_ends_cleanly(db: asyncpg.Pool) -> None:
    user, *others = await add_users(db, 7)
    await connect(db, user, others)

    found = await PgConnectionSource(db, page_size=3).accepted_connections(user)

    assert found == sorted(others)


def test_page_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        PgConnectionSource(None, page_size=0)
