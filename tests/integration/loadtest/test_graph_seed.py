"""Seeding a generated graph into PostgreSQL with COPY."""

from __future__ import annotations

import asyncpg

from loadtest.graph import build_graph, reset_tables, seed_graph


async def test_seeded_graph_matches_the_generated_adjacency(db: asyncpg.Pool) -> None:
    # GIVEN a generated graph
    graph = build_graph(120, seed=5)
    # WHEN it is seeded
    report = await seed_graph(db, graph)
    # THEN every user has a profile and PostgreSQL's accepted connections equal the adjacency
    assert report.users == 120
    assert await db.fetchval("SELECT count(*) FROM user_profiles") == 120
    hub = max(graph.users, key=graph.degree)
    rows = await db.fetch(
        "SELECT CASE WHEN requester_id = $1 THEN addressee_id ELSE requester_id END AS other"
        " FROM connections WHERE status = 'accepted' AND $1 IN (requester_id, addressee_id)",
        hub,
    )
    assert sorted(r["other"] for r in rows) == sorted(graph.targets(hub))
    assert await db.fetchval("SELECT count(*) FROM connections") == report.connections


async def test_reset_then_reseed_is_repeatable(db: asyncpg.Pool) -> None:
    # GIVEN a seeded graph with a post
    graph = build_graph(30, seed=2)
    await seed_graph(db, graph)
    await db.execute("INSERT INTO posts (author_id, text_content) VALUES ($1, 'x')", graph.users[0])
    # WHEN the tables are reset and the same graph seeded again
    await reset_tables(db)
    report = await seed_graph(db, graph)
    # THEN it succeeds with no leftovers
    assert report.users == 30
    assert await db.fetchval("SELECT count(*) FROM posts") == 0


async def test_seeded_connections_are_vacuumed_for_index_only_reads(db: asyncpg.Pool) -> None:
    # GIVEN a seeded graph
    graph = build_graph(200, seed=3)
    await seed_graph(db, graph)
    hub = max(graph.users, key=graph.degree)
    # WHEN the fan-out's connection read is planned and run
    plan = await db.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT addressee_id FROM connections"
        " WHERE requester_id = $1 AND status = 'accepted' ORDER BY addressee_id",
        hub,
    )
    # THEN the visibility map is set: whatever scan PostgreSQL picks, no heap page is
    # visited to check visibility
    assert "Heap Fetches" not in plan or '"Heap Fetches": 0' in plan
    assert await db.fetchval(
        "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'connections'"
    )
