"""The service's reads: connection lists from the read pool, pair checks from the primary.

A connection list is read where the feed worker reads it (`DATABASE_READ_URL`
when set: `store/replica.py`'s `ReadRouter.reader`); a list a few milliseconds
behind is what the feed worker accepts too. The two pair checks answer
decisions the API takes right after a write (a request just sent, a request
just accepted), so they read the primary, which has every commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg

from contracts.failures import POSTGRES, boundary
from store import social
from store.connections import PgConnectionSource
from store.replica import ReadRouter
from store.social import ConnectionRow


class PgConnectionReads:
    """`ConnectionReads` over PostgreSQL (see the module docstring)."""

    def __init__(self, primary: asyncpg.Pool, replica: asyncpg.Pool | None = None) -> None:
        self._primary = primary
        self._lists = ReadRouter(
            PgConnectionSource(primary),
            None if replica is None else PgConnectionSource(replica),
            pipeline="connections-service",
        )

    def connection_pages(self, user_id: uuid.UUID) -> AsyncIterator[bytes]:
        return self._lists.reader.connection_pages(user_id)

    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        with boundary(f"Checking whether {a} and {b} are connected", dependency=POSTGRES):
            return await social.are_connected(self._primary, a, b)

    async def pending_request(self, a: uuid.UUID, b: uuid.UUID) -> ConnectionRow | None:
        with boundary(f"Looking up a pending request between {a} and {b}", dependency=POSTGRES):
            return await social.pending_request(self._primary, a, b)
