"""The replication set-up itself: the replica streams from the primary and is read-only."""

from __future__ import annotations

import asyncpg
import pytest

from tests.replica.replication import Replication


async def test_replica_is_a_hot_standby_that_replays_the_primary(replicated: Replication) -> None:
    assert await replicated.replica.fetchval("SELECT pg_is_in_recovery()") is True
    await replicated.primary.execute(
        "INSERT INTO users (email, password_hash) VALUES ('a@example.com', 'x')"
    )
    await replicated.caught_up()
    assert await replicated.replica.fetchval("SELECT count(*) FROM users") == 1
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await replicated.replica.execute("DELETE FROM users")
