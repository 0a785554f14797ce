"""The PostgreSQL `ConnectionSource`: accepted connections by keyset pages.

Each page merges the two partial indexes (`connections_accepted_by_requester`,
`connections_accepted_by_addressee`), each read in index order from the last
id seen, so an author with tens of thousands of connections costs a handful of
short index scans and never an OFFSET.
"""

from __future__ import annotations

import uuid
from typing import Final

import asyncpg

DEFAULT_PAGE_SIZE: Final = 5000

_BRANCHES: Final = """
    (SELECT addressee_id AS other FROM connections
      WHERE requester_id = $1 AND status = 'accepted' {after_requester}
      ORDER BY addressee_id LIMIT $2)
    UNION ALL
    (SELECT requester_id AS other FROM connections
      WHERE addressee_id = $1 AND status = 'accepted' {after_addressee}
      ORDER BY requester_id LIMIT $2)
    ORDER BY other LIMIT $2
"""
FIRST_PAGE: Final = _BRANCHES.format(after_requester="", after_addressee="")
NEXT_PAGE: Final = _BRANCHES.format(
    after_requester="AND addressee_id > $3", after_addressee="AND requester_id > $3"
)


class PgConnectionSource:
    """Reads accepted connections, both directions, from PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, *, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}.")
        self._pool = pool
        self._page_size = page_size

    async def accepted_connections(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        """Every user joined to `user_id` by an accepted connection, sorted, once each."""
        result: list[uuid.UUID] = []
        last: uuid.UUID | None = None
        async with self._pool.acquire() as conn:
            while True:
                page = await self._page(conn, user_id, last)
                for other in page:
                    # A pair accepted in both directions appears twice, adjacent.
                    if other != last:
                        result.append(other)
                        last = other
                if len(page) < self._page_size:
                    return result

    async def _page(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, after: uuid.UUID | None
    ) -> list[uuid.UUID]:
        if after is None:
            rows = await conn.fetch(FIRST_PAGE, user_id, self._page_size)
        else:
            rows = await conn.fetch(NEXT_PAGE, user_id, self._page_size, after)
        return [r[0] for r in rows]
