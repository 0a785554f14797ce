"""Migration 0006 settles pairs that already have several live rows, the same way every time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from store.db import drop_database, with_database
from store.migrate import downgrade, upgrade
from tests.settings import SettingsFactory

BEFORE = 5  # the last revision without one live row per pair
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def old_schema(settings_factory: SettingsFactory) -> AsyncIterator[str]:
    """A new database migrated up to revision 5."""
    name = f"socialpipe_pairs_{uuid.uuid4().hex[:8]}"
    url = with_database(settings_factory().database_url, name)
    await upgrade(url)
    await downgrade(url, to=BEFORE)
    try:
        yield url
    finally:
        await drop_database(url)


async def test_duplicates_keep_the_accepted_then_oldest_row_and_decline_the_rest(
    old_schema: str,
) -> None:
    conn = await asyncpg.connect(old_schema)
    try:
        users = [uuid.uuid4() for _ in range(8)]
        await conn.executemany(
            "INSERT INTO users (id, email) VALUES ($1, $2)", [(u, f"{u}@x.test") for u in users]
        )
        a, b, c, d, e, f, g, h = users

        async def row(req: uuid.UUID, add: uuid.UUID, status: str, minutes: int) -> uuid.UUID:
            at = T0 + timedelta(minutes=minutes)
            return await conn.fetchval(  # type: ignore[no-any-return]
                "INSERT INTO connections (requester_id, addressee_id, status, created_at)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                req,
                add,
                status,
                at,
            )

        # GIVEN what the old race left: accepted + newer pending the other way;
        # two accepted rows; a newer accepted row beside an older pending one;
        # and pairs that were fine (one pending; a declined and a pending row)
        ab_accepted, ab_pending = await row(a, b, "accepted", 0), await row(b, a, "pending", 1)
        cd_old, cd_new = await row(d, c, "accepted", 0), await row(c, d, "accepted", 5)
        ef_pending, ef_accepted = await row(e, f, "pending", 0), await row(f, e, "accepted", 3)
        gh_declined, gh_pending = await row(g, h, "declined", 0), await row(h, g, "pending", 1)
    finally:
        await conn.close()

    # WHEN migrating up
    await upgrade(old_schema)

    # THEN each pair keeps its accepted row (the oldest of several), the rest are declined
    conn = await asyncpg.connect(old_schema)
    try:
        statuses = dict(await conn.fetch("SELECT id, status FROM connections"))
        assert statuses == {
            ab_accepted: "accepted",
            ab_pending: "declined",
            cd_old: "accepted",
            cd_new: "declined",
            ef_pending: "declined",
            ef_accepted: "accepted",
            gh_declined: "declined",
            gh_pending: "pending",
        }
        # AND from now on the database refuses a second live row for a pair
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO connections (requester_id, addressee_id) VALUES ($1, $2)", b, a
            )
    finally:
        await conn.close()
    # AND the migration reverts cleanly
    assert [m.revision for m in await downgrade(old_schema, to=BEFORE)][-1] == BEFORE + 1
