from __future__ import annotations

import uuid

import asyncpg

from store.db import drop_database, with_database
from store.migrate import available, downgrade, upgrade
from tests.settings import SettingsFactory


async def test_up_creates_database_and_down_reverts_everything(
    settings_factory: SettingsFactory,
) -> None:
    # GIVEN a database that does not exist
    url = with_database(settings_factory().database_url, f"socialpipe_mig_{uuid.uuid4().hex[:8]}")
    try:
        # WHEN migrating up, then down, then up again
        applied = await upgrade(url)
        assert [m.revision for m in applied] == [m.revision for m in available()]
        assert await upgrade(url) == []
        reverted = await downgrade(url)
        conn = await asyncpg.connect(url)
        try:
            left = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                " AND tablename <> 'schema_migrations'"
            )
        finally:
            await conn.close()
        # THEN down left no table behind, and up works again
        assert len(reverted) == len(applied)
        assert left == []
        assert len(await upgrade(url)) == len(applied)
    finally:
        await drop_database(url)


async def test_contract_columns_alone_insert_cleanly(db: asyncpg.Pool) -> None:
    uid, other = uuid.uuid4(), uuid.uuid4()
    async with db.acquire() as conn:
        for u in (uid, other):
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, date_of_birth, created_at)"
                " VALUES ($1, $2, 'x', '1990-01-01', now())",
                u,
                f"{u}@example.com",
            )
        await conn.execute(
            "INSERT INTO user_profiles (user_id, full_name, headline, location, visibility,"
            " updated_at) VALUES ($1, 'Ada', 'Engineer', 'Berlin', 'public', now())",
            uid,
        )
        v1 = await conn.fetchval("SELECT version FROM user_profiles WHERE user_id=$1", uid)
        await conn.execute(
            "INSERT INTO skills (id, user_id, skill_name) VALUES ($1, $2, 'Go')", uuid.uuid4(), uid
        )
        v2 = await conn.fetchval("SELECT version FROM user_profiles WHERE user_id=$1", uid)
        await conn.execute(
            "INSERT INTO connections (id, requester_id, addressee_id, status, created_at)"
            " VALUES ($1, $2, $3, 'pending', now())",
            uuid.uuid4(),
            uid,
            other,
        )
        # A second pending request between the same pair, either direction, is refused.
        try:
            await conn.execute(
                "INSERT INTO connections (id, requester_id, addressee_id, status, created_at)"
                " VALUES ($1, $2, $3, 'pending', now())",
                uuid.uuid4(),
                other,
                uid,
            )
            raised = False
        except asyncpg.UniqueViolationError:
            raised = True
    assert v2 > v1
    assert raised
