"""After an ordinary run with no fault, every reconciler reports zero drift.

The read models are built by the live workers' own code paths: posts fanned out
out of creation order into capped feeds, profiles indexed and then re-indexed
after edits that changed nothing searchable (newer version, same content).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from opensearchpy import AsyncOpenSearch

from pipelines.search.opensearch import OpenSearchIndex, document_body
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.search import SearchReconcileOptions, SearchReconciler
from store.profiles import load_profiles
from tests.contract.opensearch.matching import MatchingReplay
from tests.contract.opensearch.replay import serve
from tests.integration.pipelines.search.profiles import add_user
from tests.integration.reconcile.pipeline_state import (
    USERS,
    feed_reconciler,
    index_with_unchanged_edits,
    pipeline_feeds,
)
from transforms.search_document import to_search_document


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def test_feeds_and_search_built_by_the_pipelines_report_zero_drift(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, stack: AsyncExitStack
) -> None:
    # GIVEN feeds of at most 5 posts fanned out out of order, and an index whose
    # re-indexed unchanged profiles kept their older stored version
    world = await pipeline_feeds(db, redis_client, stack, max_length=5, block=5)
    touched = await index_with_unchanged_edits(db)
    older = await db.fetchval(
        "SELECT count(*) FROM search_documents d JOIN user_profiles p USING (user_id)"
        " WHERE d.version < p.version"
    )
    assert older == len(touched) > 0
    # WHEN both reconcilers check everything in dry runs
    feeds = await feed_reconciler(db, redis_client, 5, dry_run=True).run()
    search = await SearchReconciler(
        db, PostgresSearchIndex(db), SearchReconcileOptions(batch_size=300, dry_run=True)
    ).run()
    # THEN neither reports drift of any kind
    assert feeds.checked == len(world.users) == USERS
    assert (feeds.missing, feeds.extra, feeds.duplicate, feeds.phantom) == (0, 0, 0, 0)
    assert search.checked == USERS
    assert (search.missing, search.stale, search.privacy, search.orphaned) == (0, 0, 0, 0)
    assert feeds.consistent and search.consistent


def mget_exchange(ids: list[uuid.UUID], docs: dict[uuid.UUID, dict[str, Any]]) -> dict[str, Any]:
    found = [{"_index": "users_v1", "_id": str(i), "found": True, "_source": docs[i]} for i in ids]
    return {
        "request": {
            "method": "POST",
            "path": "/users_write/_mget",
            "query": {},
            "json": {"ids": [str(i) for i in ids]},
        },
        "response": {"status": 200, "json": {"docs": found}},
    }


def scan_exchanges(ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """Refresh, a point in time, one page of every id, the PIT deleted (bodies not compared)."""
    pit = {"pit_id": "pit-1"}
    hits = [{"_id": str(i), "sort": [str(i)]} for i in ids]

    def exchange(method: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        return {
            "request": {"method": method, "path": path, "query": query},
            "match_body": False,
            "response": {"status": 200, "json": body},
        }

    return [
        exchange("POST", "/users_write/_refresh", {}, {"_shards": {"failed": 0}}),
        exchange(
            "POST",
            "/users_write/_search/point_in_time",
            {"keep_alive": "5m", "allow_partial_pit_creation": "false"},
            pit,
        ),
        exchange("POST", "/_search", {}, {**pit, "hits": {"hits": hits}}),
        exchange("DELETE", "/_search/point_in_time", {}, {"pits": [{"successful": True}]}),
    ]


async def test_opensearch_documents_with_an_older_version_and_equal_content_are_no_drift(
    db: asyncpg.Pool,
) -> None:
    # GIVEN two profiles edited without a searchable change since they were indexed:
    # OpenSearch holds their documents at the version before the edit
    people = sorted([await add_user(db, "Ada Lovelace"), await add_user(db, "Pia Private")])
    await db.execute(
        "UPDATE user_profiles SET visibility = 'private' WHERE user_id = $1", people[1]
    )
    before = {p.user_id: to_search_document(p) for p in (await load_profiles(db, people)).profiles}
    await db.execute(
        "UPDATE user_profiles SET full_name = full_name WHERE user_id = ANY($1)", people
    )
    stored = {u: {**document_body(d)} for u, d in before.items()}
    # `serve` is typed for the in-order replay; the matching one answers the same way.
    replay: Any = MatchingReplay([mget_exchange(people, stored), *scan_exchanges(people)])
    runner, url = await serve(replay)
    client = AsyncOpenSearch(hosts=[url], max_retries=0)
    try:
        # WHEN reconciliation runs for real over the OpenSearch adapter
        report = await SearchReconciler(db, OpenSearchIndex(client)).run()
    finally:
        await client.close()
        await runner.cleanup()
    # THEN nothing drifts and nothing is written
    assert replay.unmatched == [] and replay.unanswered() == []
    assert (report.checked, report.drift, report.repaired) == (2, 0, 0)
    assert ("POST", "/_bulk") not in replay.paths()
