"""Full re-index (the seed's contingency plan): fill a new index from PostgreSQL, swap it in.

The new index is filled with the very stage the worker runs (`index_users`),
in keyset batches of user ids. Updates that arrive while a rebuild runs are
not lost, by backend:

* PostgreSQL: workers keep writing the live table. The swap takes an
  exclusive lock on it (writers wait a moment), copies every row written
  there since the rebuild started into the new table where its version is
  greater (tombstones included), then renames the tables. A writer blocked
  on the lock resolves the table name again once it gets it, so its write
  lands in the new table.
* OpenSearch: the write alias moves to the new index *before* the backfill,
  so workers write into it from the start; the backfill and the workers both
  use external versions, so whichever read is newer wins, in any order.
  Deletions leave version tombstones, kept longer than a rebuild lasts
  (`gc_deletes` in the template). Searches read the old index until the swap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg
from opensearchpy import AsyncOpenSearch

from pipelines.search.handler import ProfileLoader, index_users
from pipelines.search.opensearch import (
    INDEX_PREFIX,
    READ_ALIAS,
    WRITE_ALIAS,
    OpenSearchIndex,
    generation_of,
    index_name,
)
from pipelines.search.ports import SearchIndex
from pipelines.search.postgres import TABLE, PostgresSearchIndex
from store.profiles import count_profiles, profile_ids_after

PREVIOUS_TABLE = f"{TABLE}_previous"
REBUILD_TABLE = f"{TABLE}_rebuild"


class RebuildError(Exception):
    """The rebuild could not finish; the live index was left as it was."""


class RebuildTarget(Protocol):
    """A backend's way to build a new index beside the live one and swap it in."""

    async def begin(self) -> SearchIndex:
        """Create the empty new index; return an index that writes into it."""
        ...

    async def count(self) -> int:
        """Documents in the new index."""
        ...

    async def swap(self) -> str:
        """Make the new index live atomically; return a line describing what happened."""
        ...


@dataclass(slots=True)
class RebuildReport:
    scanned: int = 0
    indexed: int = 0
    invalid: int = 0
    counted: int = 0
    swapped: str = ""


async def rebuild(
    pool: asyncpg.Pool,
    load: ProfileLoader,
    target: RebuildTarget,
    *,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    between_batches: Callable[[], object] | None = None,
) -> RebuildReport:
    """Fill `target` from PostgreSQL in keyset batches, verify the count, swap it in."""
    report = RebuildReport()
    new_index = await target.begin()
    total = await count_profiles(pool)
    after: uuid.UUID | None = None
    while ids := await profile_ids_after(pool, after, batch_size):
        result = await index_users(load, new_index, ids)
        report.scanned += len(ids)
        report.invalid += len(result.invalid) + len(result.report.failed)
        after = ids[-1]
        if progress is not None:
            progress(len(ids), total)
        if between_batches is not None:
            await _maybe_await(between_batches())
    report.indexed = report.scanned - report.invalid
    report.counted = await target.count()
    # Profiles deleted during the backfill leave fewer documents than were
    # scanned; anything missing beyond that means the backfill lost writes.
    if report.counted < report.indexed - await _deleted_since(pool, report.scanned):
        raise RebuildError(
            f"The new index holds {report.counted} documents but {report.indexed} were expected;"
            " the live index was not replaced."
        )
    report.swapped = await target.swap()
    return report


async def _deleted_since(pool: asyncpg.Pool, scanned: int) -> int:
    return max(0, scanned - await count_profiles(pool))


async def _maybe_await(value: object) -> None:
    if hasattr(value, "__await__"):
        await value


class PostgresRebuild:
    """Rebuild `search_documents` as `search_documents_rebuild`, then swap the tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.started_at: object = None

    async def begin(self) -> SearchIndex:
        async with self.pool.acquire() as conn:
            self.started_at = await conn.fetchval("SELECT clock_timestamp()")
            await conn.execute(f"DROP TABLE IF EXISTS {REBUILD_TABLE}")
            await conn.execute(f"CREATE TABLE {REBUILD_TABLE} (LIKE {TABLE} INCLUDING ALL)")
        return PostgresSearchIndex(self.pool, table=REBUILD_TABLE)

    async def count(self) -> int:
        return int(
            await self.pool.fetchval(f"SELECT count(*) FROM {REBUILD_TABLE} WHERE NOT deleted")
        )

    async def swap(self) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            merged = await conn.fetchval(_MERGE_SQL, self.started_at)
            await conn.execute(f"DROP TABLE IF EXISTS {PREVIOUS_TABLE}")
            await conn.execute(f"ALTER TABLE {TABLE} RENAME TO {PREVIOUS_TABLE}")
            await conn.execute(f"ALTER TABLE {REBUILD_TABLE} RENAME TO {TABLE}")
        return (
            f"{TABLE} replaced ({merged} rows written during the rebuild carried over);"
            f" the old one is kept as {PREVIOUS_TABLE}."
        )


# Rows the workers wrote into the live table since the rebuild started win
# where their version is newer than what the backfill read.
_COLUMNS = (
    "user_id, version, content_hash, deleted, full_name, headline, location, visibility,"
    " companies, job_titles, schools, skills, companies_norm, skills_norm, name_norm, indexed_at"
)
_MERGE_SQL = f"""
WITH moved AS (
    INSERT INTO {REBUILD_TABLE} AS n ({_COLUMNS})
    SELECT {_COLUMNS} FROM {TABLE} WHERE indexed_at >= $1
    ON CONFLICT (user_id) DO UPDATE SET
        version = excluded.version, content_hash = excluded.content_hash,
        deleted = excluded.deleted, full_name = excluded.full_name,
        headline = excluded.headline, location = excluded.location,
        visibility = excluded.visibility, companies = excluded.companies,
        job_titles = excluded.job_titles, schools = excluded.schools, skills = excluded.skills,
        companies_norm = excluded.companies_norm, skills_norm = excluded.skills_norm,
        name_norm = excluded.name_norm, indexed_at = excluded.indexed_at
    WHERE excluded.version > n.version
    RETURNING 1
)
SELECT count(*) FROM moved
"""


async def drop_previous_table(pool: asyncpg.Pool) -> bool:
    exists = await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", PREVIOUS_TABLE)
    await pool.execute(f"DROP TABLE IF EXISTS {PREVIOUS_TABLE}")
    return bool(exists)


class OpenSearchRebuild:
    """Rebuild into `users_v<N+1>`: write alias first, read alias at the swap."""

    def __init__(self, client: AsyncOpenSearch) -> None:
        self.client = client
        self.old = ""
        self.new = ""

    async def begin(self) -> SearchIndex:
        aliases = await self.client.indices.get_alias(name=READ_ALIAS)
        self.old = next(iter(aliases))
        self.new = index_name(generation_of(self.old) + 1)
        await self.client.indices.create(index=self.new)
        await self.client.indices.update_aliases(
            body={
                "actions": [
                    {"remove": {"index": self.old, "alias": WRITE_ALIAS}},
                    {"add": {"index": self.new, "alias": WRITE_ALIAS}},
                ]
            }
        )
        return OpenSearchIndex(self.client, read_target=self.new, write_target=self.new)

    async def count(self) -> int:
        # One refresh so the count sees the backfill; not part of any write path.
        await self.client.indices.refresh(index=self.new)
        response = await self.client.count(index=self.new)
        return int(response["count"])

    async def swap(self) -> str:
        await self.client.indices.update_aliases(
            body={
                "actions": [
                    {"remove": {"index": self.old, "alias": READ_ALIAS}},
                    {"add": {"index": self.new, "alias": READ_ALIAS}},
                ]
            }
        )
        return f"alias {READ_ALIAS} moved from {self.old} to {self.new}; {self.old} is kept."


async def drop_previous_indices(client: AsyncOpenSearch) -> list[str]:
    """Delete every `users_v*` index that neither alias points at."""
    live = set(await client.indices.get_alias(name=f"{READ_ALIAS},{WRITE_ALIAS}"))
    every = set(await client.indices.get(index=f"{INDEX_PREFIX}*"))
    stale = sorted(every - live)
    for name in stale:
        await client.indices.delete(index=name)
    return stale
