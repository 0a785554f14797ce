"""The PostgreSQL `ConnectionSource`: accepted connections by keyset pages.

Each page merges the two partial indexes (`connections_accepted_by_requester`,
`connections_accepted_by_addressee`), each read in index order from the last
id seen, so an author with tens of thousands of connections costs a handful of
short index scans and never an OFFSET. A page comes back as one value, the
ids' 16-byte forms concatenated in order: decoding a row and a `UUID` per
connection cost more than the fan-out that follows, which needs only the bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Final

import asyncpg

from contracts.failures import POSTGRES, boundary
from store.replica import ReadRouter
from transforms.fanout import UUID_BYTES, PackedIds

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
# A pair accepted in both directions appears twice in a page; DISTINCT folds it.
# uuid_send gives the 16 bytes PostgreSQL compares uuids by, so the order holds.
_PACKED: Final = """
SELECT count(*) AS rows,
       string_agg(DISTINCT uuid_send(other), ''::bytea ORDER BY uuid_send(other)) AS packed
  FROM ({branches}) page
"""
FIRST_PAGE: Final = _PACKED.format(
    branches=_BRANCHES.format(after_requester="", after_addressee="")
)
NEXT_PAGE: Final = _PACKED.format(
    branches=_BRANCHES.format(
        after_requester="AND addressee_id > $3", after_addressee="AND requester_id > $3"
    )
)

POST_EXISTS: Final = "SELECT EXISTS (SELECT 1 FROM posts WHERE id = $1 AND author_id = $2)"
# The post check and the first page in one statement: the feed worker asks both
# for every post whose author's list is not cached, and a round trip costs the
# worker and PostgreSQL more CPU than the check itself.
POST_AND_FIRST_PAGE: Final = FIRST_PAGE.replace(
    "SELECT count(*) AS rows,",
    "SELECT EXISTS (SELECT 1 FROM posts WHERE id = $3 AND author_id = $1) AS post,"
    " count(*) AS rows,",
    1,
)


class PgConnectionSource:
    """Reads accepted connections, both directions, from PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, *, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}.")
        self._pool = pool
        self._page_size = page_size

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        """Whether `post_id` is a post of `author_id` (one primary-key lookup)."""
        with boundary(f"Checking post {post_id} in PostgreSQL", dependency=POSTGRES):
            found = await self._pool.fetchval(POST_EXISTS, post_id, author_id)
        return bool(found)

    async def accepted_connections(self, user_id: uuid.UUID) -> PackedIds:
        """Every user joined to `user_id` by an accepted connection, sorted, once each
        (`PackedIds.ordered`: the pages are read in order, each sorted and distinct)."""
        pages = [page async for page in self.connection_pages(user_id)]
        return PackedIds(b"".join(pages), ordered=True)

    async def post_connections(self, post_id: uuid.UUID, author_id: uuid.UUID) -> PackedIds | None:
        """`accepted_connections(author_id)` if `post_id` is a post of `author_id`, else None;
        the check rides on the first page's query, so most authors cost one round trip."""
        with boundary(
            f"Reading post {post_id} and the connections of user {author_id} from PostgreSQL",
            dependency=POSTGRES,
        ):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(POST_AND_FIRST_PAGE, author_id, self._page_size, post_id)
                assert row is not None  # an aggregate always returns one row
                if not row["post"]:
                    return None
                first = (int(row["rows"]), row["packed"])
                pages = [page async for page in self._pages(conn, author_id, first)]
        return PackedIds(b"".join(pages), ordered=True)

    async def connection_pages(self, user_id: uuid.UUID) -> AsyncIterator[bytes]:
        """The same ids as packed pages of at most `page_size` ids, in order, each page
        yielded as soon as it is read (the Connections Service streams them)."""
        with boundary(
            f"Reading the connections of user {user_id} from PostgreSQL", dependency=POSTGRES
        ):
            async with self._pool.acquire() as conn:
                first = await self._page(conn, user_id, None)
                async for page in self._pages(conn, user_id, first):
                    yield page

    async def _pages(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, first: tuple[int, bytes | None]
    ) -> AsyncIterator[bytes]:
        """`first` page, then the pages after it, until one comes back short."""
        rows, packed = first
        while True:
            if packed:
                yield packed
            if rows < self._page_size or not packed:
                return
            last = uuid.UUID(bytes=packed[-UUID_BYTES:])
            rows, packed = await self._page(conn, user_id, last)

    async def _page(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, after: uuid.UUID | None
    ) -> tuple[int, bytes | None]:
        if after is None:
            row = await conn.fetchrow(FIRST_PAGE, user_id, self._page_size)
        else:
            row = await conn.fetchrow(NEXT_PAGE, user_id, self._page_size, after)
        assert row is not None  # an aggregate always returns one row
        return int(row["rows"]), row["packed"]


PostKey = tuple[uuid.UUID, uuid.UUID]


class RoutedConnectionSource:
    """A `ConnectionSource` that reads a replica and asks the primary what the replica lacks.

    A post the replica does not have may simply not be replayed yet, so a miss
    waits for the replica, then checks the primary: only a post the primary
    lacks is reported missing. Connections are read from the replica as they
    are; a connection accepted a moment ago reaches the feeds at the latest
    when `reconcile feeds` runs.
    """

    def __init__(self, router: ReadRouter[PgConnectionSource]) -> None:
        self._router = router

    async def post_exists(self, post_id: uuid.UUID, author_id: uuid.UUID) -> bool:
        key = (post_id, author_id)
        found = await self._router.read([key], _existing_posts, _present)
        return found.get(key, False)

    async def accepted_connections(self, user_id: uuid.UUID) -> PackedIds:
        return await self._router.reader.accepted_connections(user_id)


async def _existing_posts(source: PgConnectionSource, keys: list[PostKey]) -> dict[PostKey, bool]:
    return {key: True for key in keys if await source.post_exists(*key)}


def _present(_key: PostKey, found: bool | None) -> bool:
    return bool(found)
