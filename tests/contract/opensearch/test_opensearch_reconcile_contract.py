"""The OpenSearch side of reconciliation against recorded exchanges (no live cluster).

`get_many` (one `mget`), `scan_ids` (refresh, point in time, `search_after`
pages, PIT deleted however the scan ends) and `repair` (`external_gte`), then
`SearchReconciler` end to end: real PostgreSQL profiles, the index replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from opensearchpy import AsyncOpenSearch, NotFoundError
from opensearchpy.exceptions import AuthorizationException

from contracts.failures import UnexpectedError
from pipelines.search.opensearch import OpenSearchIndex
from reconcile.search import SearchReconcileOptions, SearchReconciler
from tests.contract.opensearch.matching import MatchingReplay, canonical
from tests.contract.opensearch.replay import Replay, load, serve
from transforms.search_document import ProfileData, to_search_document


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(f"6f1c2c4e-0000-4000-8000-0000000000{n:02x}")


A, B, C, D, E = (uid(n) for n in (0x0A, 0x0B, 0x0C, 0x0D, 0x0E))
PIT_DELETE = ("DELETE", "/_search/point_in_time")

Server = Callable[[Any], Awaitable[OpenSearchIndex]]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """Serve a `Replay` or `MatchingReplay`; return the index adapter pointed at it."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(replay: Any) -> OpenSearchIndex:
        runner, url = await serve(replay)
        client = AsyncOpenSearch(hosts=[url], max_retries=0)
        cleanups.extend([runner.cleanup, client.close])
        return OpenSearchIndex(client)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


async def test_get_many_reads_stored_documents_with_planted_fields_and_skips_absent(
    server: Server,
) -> None:
    # GIVEN A stored public, B stored private with restricted fields planted, D absent
    recorded = Replay(load("get_many"))
    index = await server(recorded)
    # WHEN the three are read
    stored = await index.get_many([A, B, D])
    # THEN one mget on the write alias went out, and the documents are read as stored
    assert recorded.received == recorded.expected()
    assert set(stored) == {A, B}
    assert (stored[A].version, stored[A].companies, stored[A].schools) == (
        41,
        ("Analytical Engines",),
        ("Home",),
    )
    assert (stored[B].visibility, stored[B].headline, stored[B].companies) == (
        "private",
        "Secret",
        ("Acme",),
    )


async def test_get_many_of_no_ids_sends_nothing(server: Server) -> None:
    recorded = Replay([])
    index = await server(recorded)
    assert await index.get_many([]) == {}
    assert recorded.received == []


async def test_scan_pages_through_a_point_in_time_and_deletes_it(server: Server) -> None:
    # GIVEN five documents and pages of two
    recorded = Replay(load("scan_pages"))
    index = await server(recorded)
    # WHEN every id is scanned
    pages = [page async for page in index.scan_ids(2)]
    # THEN refresh, PIT creation (no partial PIT), three search_after pages, PIT deletion
    assert recorded.received == recorded.expected()
    assert pages == [[A, B], [C, D], [E]]
    create = recorded.received[1]
    assert create["query"] == {"keep_alive": "5m", "allow_partial_pit_creation": "false"}
    first, second = recorded.received[2]["json"], recorded.received[3]["json"]
    assert "search_after" not in first and second["search_after"] == [str(B)]
    assert first["pit"]["id"] == create_pit_id(recorded) and "index" not in first
    assert recorded.received[-1]["json"] == {"pit_id": [create_pit_id(recorded)]}


def create_pit_id(recorded: Replay) -> str:
    pit_id: str = recorded.exchanges[1]["response"]["json"]["pit_id"]
    return pit_id


async def test_a_scan_closed_early_still_deletes_its_point_in_time(server: Server) -> None:
    # GIVEN a scan whose consumer stops after the first page
    recorded = Replay(load("scan_pages"))
    index = await server(recorded)
    scan = index.scan_ids(2)
    first = await anext(scan)
    # WHEN it is closed
    await scan.aclose()  # type: ignore[attr-defined]
    # THEN no further page was asked for and the PIT was deleted
    assert first == [A, B]
    expected = recorded.expected()
    assert recorded.received == [*expected[:3], expected[-1]]


async def test_a_failed_page_deletes_the_point_in_time_and_raises(server: Server) -> None:
    # GIVEN a PIT lost between two pages (404 search_context_missing_exception)
    recorded = Replay(load("scan_context_lost"))
    index = await server(recorded)
    seen: list[list[uuid.UUID]] = []
    # WHEN the scan reaches the second page
    with pytest.raises(UnexpectedError) as raised:
        async for page in index.scan_ids(2):
            seen.append(page)
    # THEN the first page was yielded, the PIT delete was still sent, and its
    # unsuccessful answer did not replace the scan's own error (the lost PIT,
    # named as the failed OpenSearch call and not retried by the adapter)
    assert seen == [[A, B]]
    assert recorded.received == recorded.expected()
    assert raised.value.message.startswith("Calling OpenSearch failed:")
    assert isinstance(raised.value.__cause__, NotFoundError)


async def test_repair_rewrites_an_equal_version_and_counts_a_newer_one_stale(
    server: Server,
) -> None:
    # GIVEN A stored at the same version 41, C stored at the newer version 90
    recorded = Replay(load("repair"))
    index = await server(recorded)
    docs = [
        to_search_document(
            ProfileData(
                A,
                "Ada Lovelace",
                "Analyst",
                "London",
                "public",
                41,
                ["Analytical Engines"],
                ["Programmer"],
                ["Home"],
                ["Mathematics"],
            )
        ),
        to_search_document(ProfileData(C, "Cid Stale", "Old", None, "public", 43)),
    ]
    # WHEN both are repaired
    report = await index.repair(docs)
    # THEN they go out with external_gte and without a content-hash read first
    assert recorded.received == recorded.expected()
    actions = recorded.received[0]["ndjson"][::2]
    assert {a["index"]["version_type"] for a in actions} == {"external_gte"}
    # AND the equal version was written, the newer one left alone
    assert (report.written, report.stale, report.failed) == (1, 1, {})


# End to end: the profiles below at versions 100..103, in this order.
PROFILES = [
    (A, "Ada Lovelace", "Analyst", "London", "public"),
    (B, "Bob Missing", "Builder", "Berlin", "public"),
    (C, "Cid Stale", "Engineer", "Cairo", "public"),
    (D, "Pia Private", "Founder", "Oslo", "private"),
]


async def seed_profiles(db: asyncpg.Pool) -> None:
    # Versions come from one sequence; pinning it makes the recorded bodies exact.
    # Every test starts from truncated tables, so no stored version can outrank these.
    await db.execute("SELECT setval('profile_version_seq', 100, false)")
    for user_id, name, headline, location, visibility in PROFILES:
        await db.execute(
            "INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id}@example.test"
        )
        await db.execute(
            "INSERT INTO user_profiles (user_id, full_name, headline, location, visibility)"
            " VALUES ($1, $2, $3, $4, $5)",
            user_id,
            name,
            headline,
            location,
            visibility,
        )


async def test_reconcile_over_opensearch_classifies_and_repairs_each_kind_of_drift(
    db: asyncpg.Pool, server: Server
) -> None:
    # GIVEN A consistent, B missing, C stale at an equal version, D private with
    # leaked fields, and E indexed although its user is gone
    await seed_profiles(db)
    recorded = MatchingReplay(load("reconcile_search"))
    index = await server(recorded)
    # WHEN reconciliation runs in batches of two
    report = await SearchReconciler(
        db, index, SearchReconcileOptions(batch_size=2, parallelism=1)
    ).run()
    # THEN each recorded request was sent exactly once and nothing else
    assert recorded.unmatched == []
    assert sorted(map(canonical, recorded.received)) == sorted(map(canonical, recorded.expected()))
    # AND the drift is classified and repaired
    assert (report.checked, report.missing, report.stale, report.privacy, report.orphaned) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert (report.repaired, report.failed) == (4, 0) and report.consistent
    # AND the scan's PIT was deleted after its last page
    paths = recorded.paths()
    assert paths.index(PIT_DELETE) > last_search(paths)


def last_search(paths: list[tuple[str, str]]) -> int:
    return max(i for i, p in enumerate(paths) if p == ("POST", "/_search"))


async def test_a_dry_run_over_opensearch_counts_the_same_drift_and_writes_nothing(
    db: asyncpg.Pool, server: Server
) -> None:
    # GIVEN the same drift, and an index that answers everything but writes
    await seed_profiles(db)
    reads = [e for e in load("reconcile_search") if e["request"]["path"] != "/_bulk"]
    recorded = MatchingReplay(reads)
    index = await server(recorded)
    # WHEN a dry run reconciles it
    report = await SearchReconciler(
        db, index, SearchReconcileOptions(batch_size=2, parallelism=1, dry_run=True)
    ).run()
    # THEN the same drift is counted, nothing repaired, no write sent, the PIT deleted
    assert recorded.unmatched == [] and recorded.unanswered() == []
    assert (report.missing, report.stale, report.privacy, report.orphaned) == (1, 1, 1, 1)
    assert report.repaired == 0
    assert ("POST", "/_bulk") not in recorded.paths()


async def test_a_reconcile_failing_mid_scan_deletes_the_point_in_time(
    db: asyncpg.Pool, server: Server
) -> None:
    # GIVEN an index of orphans only, whose first deletion is refused (index write
    # block) once the scan has already fetched its third page
    recorded = MatchingReplay(load("reconcile_search_refused"))
    index = await server(recorded)
    # WHEN reconciliation runs
    with pytest.raises(ExceptionGroup) as failed:
        await SearchReconciler(db, index, SearchReconcileOptions(batch_size=2, parallelism=1)).run()
    # THEN the refusal ends the run (sent once, raised as our unexpected failure
    # with OpenSearch's own error as its cause), and the PIT was deleted before it returned
    assert failed.group_contains(UnexpectedError)
    refused = failed.value.subgroup(UnexpectedError)
    assert refused is not None
    (error,) = refused.exceptions
    assert isinstance(error.__cause__, AuthorizationException)
    assert recorded.paths()[-1] == PIT_DELETE
    assert recorded.unmatched == [] and recorded.unanswered() == []
