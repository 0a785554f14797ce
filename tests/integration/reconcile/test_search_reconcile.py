"""`reconcile search` over the PostgreSQL backend, with drift injected into a real index."""

from __future__ import annotations

import random
import uuid

import asyncpg
import pytest

from bench.search_index import seed
from pipelines.search.handler import index_users, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.search import SearchReconcileOptions, SearchReconciler
from store.profiles import profile_ids_after

USERS = 2000
FIVE_PERCENT = USERS // 20
ORPHANS = 37
PLANTED = 40


async def indexed_population(db: asyncpg.Pool) -> list[uuid.UUID]:
    """2,000 COPY-seeded profiles (every 10th private), indexed by the pipeline's stage."""
    await seed(db, USERS, random.Random(5))
    ids = await profile_ids_after(db, None, USERS)
    await index_users(pool_loader(db), PostgresSearchIndex(db), ids)
    return ids


async def inject_drift(db: asyncpg.Pool, ids: list[uuid.UUID]) -> None:
    """Delete 5 %, make 5 % stale, add orphans, plant restricted fields into private docs."""
    private = {
        r["user_id"]
        for r in await db.fetch("SELECT user_id FROM user_profiles WHERE visibility = 'private'")
    }
    public = [u for u in ids if u not in private]
    deleted, stale = public[:FIVE_PERCENT], public[FIVE_PERCENT : 2 * FIVE_PERCENT]
    await db.execute("DELETE FROM search_documents WHERE user_id = ANY($1)", deleted)
    await db.execute(
        "UPDATE search_documents SET version = version - 1, headline = 'Old headline'"
        " WHERE user_id = ANY($1)",
        stale,
    )
    await db.execute(
        "UPDATE search_documents SET headline = 'Secret', companies = '{Hidden Corp}'"
        " WHERE user_id = ANY($1)",
        sorted(private)[:PLANTED],
    )
    ghosts = [uuid.uuid4() for _ in range(ORPHANS)]
    await db.execute(
        "INSERT INTO search_documents (user_id, version, full_name, visibility, content_hash)"
        " SELECT u, 1, 'Ghost', 'public', '\\x00' FROM unnest($1::uuid[]) u",
        ghosts,
    )


async def snapshot(db: asyncpg.Pool) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT user_id, version, deleted, headline, companies FROM search_documents"
        " ORDER BY user_id"
    )
    return rows


async def test_drift_is_counted_exactly_repaired_and_a_second_run_finds_none(
    db: asyncpg.Pool,
) -> None:
    # GIVEN an indexed population with known drift
    ids = await indexed_population(db)
    await inject_drift(db, ids)
    index = PostgresSearchIndex(db)
    before = await snapshot(db)
    # WHEN a dry run reconciles it
    dry = await SearchReconciler(
        db, index, SearchReconcileOptions(batch_size=300, dry_run=True)
    ).run()
    # THEN every kind of drift is counted exactly, and nothing changed
    assert (dry.checked, dry.missing, dry.stale) == (USERS, FIVE_PERCENT, FIVE_PERCENT)
    assert (dry.privacy, dry.orphaned, dry.repaired) == (PLANTED, ORPHANS, 0)
    assert not dry.consistent
    assert await snapshot(db) == before
    # WHEN it runs for real
    fixed = await SearchReconciler(db, index, SearchReconcileOptions(batch_size=300)).run()
    # THEN it repairs each one and says the index is consistent
    assert fixed.drift == 2 * FIVE_PERCENT + PLANTED + ORPHANS
    assert fixed.repaired == fixed.drift and fixed.failed == 0 and fixed.consistent
    # AND a second run finds nothing
    again = await SearchReconciler(db, index, SearchReconcileOptions(parallelism=2)).run()
    assert (again.checked, again.drift, again.repaired) == (USERS, 0, 0)
    # AND no private document carries a restricted field any more
    leaked = await db.fetchval(
        "SELECT count(*) FROM search_documents d JOIN user_profiles p USING (user_id)"
        " WHERE p.visibility = 'private' AND NOT d.deleted"
        " AND (d.headline IS NOT NULL OR d.companies <> '{}')"
    )
    assert leaked == 0
    assert await db.fetchval("SELECT count(*) FROM search_documents WHERE NOT deleted") == USERS


async def test_a_newer_document_written_meanwhile_is_not_drift(db: asyncpg.Pool) -> None:
    # GIVEN an index whose document is newer than the profile the reconciler reads
    ids = await indexed_population(db)
    await db.execute(
        "UPDATE search_documents SET version = version + 1000, headline = 'Newer'"
        " WHERE user_id = $1",
        ids[0],
    )
    # WHEN reconciliation runs
    report = await SearchReconciler(db, PostgresSearchIndex(db)).run()
    # THEN it leaves the newer document alone
    assert report.drift == 0
    assert (
        await db.fetchval("SELECT headline FROM search_documents WHERE user_id = $1", ids[0])
        == "Newer"
    )


@pytest.mark.parametrize(("batch_size", "parallelism"), [(0, 4), (5001, 4), (1000, 0)])
def test_batch_size_and_parallelism_are_capped(batch_size: int, parallelism: int) -> None:
    with pytest.raises(ValueError, match="must be between"):
        SearchReconcileOptions(batch_size=batch_size, parallelism=parallelism)
