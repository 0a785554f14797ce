"""`index rebuild` on PostgreSQL: a new table filled by keyset batches, swapped in, nothing lost."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg

from contracts.outcomes import ACK
from pipelines.search.handler import SearchHandler, pool_loader
from pipelines.search.postgres import PostgresSearchIndex
from pipelines.search.rebuild import PREVIOUS_TABLE, PostgresRebuild, drop_previous_table, rebuild
from store.profiles import load_profiles
from tests.factories import profile_updated
from tests.integration.pipelines.search.profiles import add_user
from transforms.search_document import to_search_document


async def expected_documents(db: asyncpg.Pool) -> dict[uuid.UUID, tuple[int, bytes]]:
    ids = [r["user_id"] for r in await db.fetch("SELECT user_id FROM user_profiles")]
    batch = await load_profiles(db, ids)
    return {p.user_id: (p.version or 0, to_search_document(p).content_hash) for p in batch.profiles}


async def indexed_documents(db: asyncpg.Pool) -> dict[uuid.UUID, tuple[int, bytes]]:
    rows = await db.fetch(
        "SELECT user_id, version, content_hash FROM search_documents WHERE NOT deleted"
    )
    return {r["user_id"]: (r["version"], bytes(r["content_hash"])) for r in rows}


async def test_rebuild_under_concurrent_updates_loses_nothing(db: asyncpg.Pool) -> None:
    # GIVEN 200 indexed users and a worker that keeps changing and re-indexing some of them
    users = [await add_user(db, f"User {i}", skills=(f"skill{i % 7}",)) for i in range(200)]
    handler = SearchHandler(pool_loader(db), PostgresSearchIndex(db))
    for start in range(0, len(users), 50):
        await handler.handle([profile_updated(user_id=u) for u in users[start : start + 50]])
    done = asyncio.Event()
    progressed = asyncio.Condition()
    changes = 0
    rng = random.Random(7)

    async def worker() -> None:
        nonlocal changes
        while not done.is_set():
            touched = [rng.choice(users)]
            await db.execute(
                "UPDATE user_profiles SET headline = $2 WHERE user_id = $1",
                touched[0],
                f"rev {changes}",
            )
            if changes == 5:
                await db.execute("DELETE FROM users WHERE id = $1", users[-1])
                touched.append(users[-1])
            if changes == 10:
                touched.append(await add_user(db, "Newcomer During Rebuild"))
            assert await handler.handle([profile_updated(user_id=u) for u in touched]) == [
                ACK
            ] * len(touched)
            changes += 1
            async with progressed:
                progressed.notify_all()

    # WHEN the index is rebuilt in small batches while the worker runs
    task = asyncio.create_task(worker())
    seen: list[int] = []

    async def let_worker_write() -> None:
        # Each batch boundary waits for two more worker writes.
        target = changes + 2
        async with progressed:
            await asyncio.wait_for(progressed.wait_for(lambda: changes >= target), timeout=30)

    report = await rebuild(
        db,
        pool_loader(db),
        PostgresRebuild(db),
        batch_size=20,
        progress=lambda n, total: seen.append(n),
        between_batches=let_worker_write,
    )
    done.set()
    await task
    # THEN the worker really ran during it, and the live table matches the source exactly
    assert changes > 10 and sum(seen) == report.scanned
    assert await indexed_documents(db) == await expected_documents(db)
    assert "kept as" in report.swapped
    # AND the replaced table is kept until dropped
    assert await db.fetchval("SELECT to_regclass($1) IS NOT NULL", PREVIOUS_TABLE)
    assert await drop_previous_table(db)
    assert not await db.fetchval("SELECT to_regclass($1) IS NOT NULL", PREVIOUS_TABLE)


async def test_rebuilt_table_is_searchable_and_writable(db: asyncpg.Pool) -> None:
    uid = await add_user(db, "Ida Rhodes", skills=("Numerical analysis",))
    await rebuild(db, pool_loader(db), PostgresRebuild(db), batch_size=10)
    index = PostgresSearchIndex(db)
    assert (await index.get(uid)) is not None
    await db.execute("UPDATE user_profiles SET headline = 'Pioneer' WHERE user_id = $1", uid)
    await SearchHandler(pool_loader(db), index).handle([profile_updated(user_id=uid)])
    doc = await index.get(uid)
    assert doc is not None and doc.headline == "Pioneer"
    await drop_previous_table(db)
