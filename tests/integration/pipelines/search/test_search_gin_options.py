"""The search table's GIN indexes write entries directly (no pending list to merge)."""

from __future__ import annotations

import asyncpg

from pipelines.search.postgres import TABLE

_GIN_OPTIONS = """
SELECT c.relname, coalesce(c.reloptions, '{}') AS options
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_am a ON a.oid = c.relam
 WHERE t.relname = $1 AND a.amname = 'gin'
"""


async def _gin_options(conn: asyncpg.Connection, table: str) -> dict[str, list[str]]:
    return {r["relname"]: list(r["options"]) for r in await conn.fetch(_GIN_OPTIONS, table)}


async def test_every_gin_index_of_the_live_table_and_a_copy_has_fastupdate_off(
    db: asyncpg.Pool,
) -> None:
    async with db.acquire() as conn:
        # GIVEN the migrated search table, and a copy made the way a rebuild makes one
        await conn.execute(f"CREATE TEMP TABLE search_copy (LIKE {TABLE} INCLUDING ALL)")
        # THEN all four GIN indexes of both have fastupdate switched off
        for table in (TABLE, "search_copy"):
            options = await _gin_options(conn, table)
            assert len(options) == 4, options
            assert all(o == ["fastupdate=off"] for o in options.values()), options
        await conn.execute("DROP TABLE search_copy")
