"""The OpenSearch adapter against recorded request/response exchanges (no live cluster).

Each test replays one file of `recorded/` on a loopback server and checks that
the adapter sent exactly the recorded requests (paths, query strings, JSON
bodies, NDJSON lines with their action metadata) and read the responses right.
The adapter calls OpenSearch once per request: a refusal is reported or raised
as our own failure type, never retried in the adapter.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch, TransportError

from contracts.errors import DependencyDown, TransientError
from contracts.failures import SEARCH_INDEX
from pipelines.search.opensearch import OpenSearchIndex
from pipelines.search.ports import SearchQuery, Tombstone
from tests.contract.opensearch.replay import Replay, load, serve
from transforms.search_document import ProfileData, to_search_document

A = uuid.UUID("6f1c2c4e-0000-4000-8000-00000000000a")
B = uuid.UUID("6f1c2c4e-0000-4000-8000-00000000000b")
C = uuid.UUID("6f1c2c4e-0000-4000-8000-00000000000c")
D = uuid.UUID("6f1c2c4e-0000-4000-8000-00000000000d")
E = uuid.UUID("6f1c2c4e-0000-4000-8000-00000000000e")

DOCS = [
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
    to_search_document(
        ProfileData(
            B, "Bea Private", "Secret", "Paris", "private", 42, ["Acme"], ["CEO"], [], ["Go"]
        )
    ),
    to_search_document(ProfileData(C, "Cid Stale", "Old", None, "public", 43, [], [], [], [])),
]
TOMBSTONES = [Tombstone(D, 50), Tombstone(E, 51)]

Replayer = Callable[[str | list[dict[str, Any]]], Awaitable[tuple[Replay, OpenSearchIndex]]]


@pytest.fixture
async def replay() -> AsyncIterator[Replayer]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(exchanges: str | list[dict[str, Any]]) -> tuple[Replay, OpenSearchIndex]:
        """Replay the recorded file of that name, or these exchanges."""
        recorded = Replay(load(exchanges) if isinstance(exchanges, str) else exchanges)
        runner, url = await serve(recorded)
        client = AsyncOpenSearch(hosts=[url], max_retries=0)
        cleanups.extend([runner.cleanup, client.close])
        return recorded, OpenSearchIndex(client)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


async def test_new_cluster_gets_template_then_users_v1_behind_both_aliases(
    replay: Replayer,
) -> None:
    recorded, index = await replay("ensure_new_cluster")
    await index.ensure()
    assert recorded.received == recorded.expected()
    template = recorded.received[0]["json"]["template"]
    assert template["mappings"]["dynamic"] == "strict"
    assert template["mappings"]["properties"]["skills"]["fields"]["keyword"]["normalizer"] == (
        "folded"
    )


async def test_existing_alias_is_left_alone(replay: Replayer) -> None:
    recorded, index = await replay("ensure_existing_alias")
    await index.ensure()
    assert recorded.received == recorded.expected()


async def test_bulk_sends_external_versions_skips_unchanged_and_counts_conflicts_stale(
    replay: Replayer,
) -> None:
    # GIVEN B stored with the same content hash and C stored at a newer version
    recorded, index = await replay("bulk_versioned")
    # WHEN three documents and two tombstones are written
    report = await index.write(DOCS, TOMBSTONES)
    # THEN exactly the recorded requests went out, without a forced refresh
    assert recorded.received == recorded.expected()
    assert all("refresh" not in r["query"] for r in recorded.received)
    lines = recorded.received[1]["ndjson"]
    assert lines[0] == {
        "index": {"_index": "users_write", "_id": str(A), "version": 41, "version_type": "external"}
    }
    assert recorded.received[2]["ndjson"][0]["delete"]["version_type"] == "external"
    # AND the report says: A written, B unchanged, C stale, D deleted, E had nothing
    assert (report.written, report.unchanged, report.stale, report.deleted) == (1, 1, 1, 1)
    assert report.failed == {}


async def test_private_document_is_sent_without_restricted_fields(replay: Replayer) -> None:
    recorded, index = await replay("bulk_throttled")
    await index.write(DOCS)
    sources = recorded.received[1]["ndjson"][1::2]
    private = next(s for s in sources if s["userId"] == str(B))
    assert set(private) == {"userId", "fullName", "skills", "visibility", "version", "contentHash"}


async def test_throttled_items_are_reported_for_the_runtime_to_retry_not_sent_again(
    replay: Replayer,
) -> None:
    # GIVEN a bulk response with one 429 and one strict-mapping refusal
    recorded, index = await replay("bulk_throttled")
    # WHEN the batch is written
    report = await index.write(DOCS)
    # THEN one bulk call went out (the adapter retries nothing itself)
    assert recorded.received == recorded.expected()
    assert [r["path"] for r in recorded.received].count("/_bulk") == 1
    # AND the throttled document is reported as throttled, the refused one as failed
    assert report.written == 1
    assert set(report.throttled) == {B} and "429" in report.throttled[B]
    assert set(report.failed) == {C} and "strict" in report.failed[C]


@pytest.mark.parametrize("status", [429, 503])
async def test_a_refused_bulk_request_is_sent_once_and_raised_as_transient(
    replay: Replayer, status: int
) -> None:
    # GIVEN a cluster that answers the whole bulk request with `status`
    mget, bulk = load("bulk_throttled")
    refused = {
        "request": bulk["request"],
        "response": {
            "status": status,
            "json": {"error": {"type": "es_rejected_execution_exception", "reason": "busy"}},
        },
    }
    recorded, index = await replay([mget, refused])
    # WHEN the batch is written
    with pytest.raises(TransientError) as raised:
        await index.write(DOCS)
    # THEN the bulk request was sent exactly once, and the error names the operation
    assert recorded.received == recorded.expected()
    assert not isinstance(raised.value, DependencyDown)
    assert raised.value.message.startswith("Calling OpenSearch failed:")
    assert isinstance(raised.value.__cause__, TransportError)
    assert raised.value.__cause__.status_code == status


async def test_an_unreachable_cluster_is_an_outage_of_the_search_index() -> None:
    # GIVEN a cluster nobody listens for (a closed loopback port)
    runner, url = await serve(Replay([]))
    await runner.cleanup()
    client = AsyncOpenSearch(hosts=[url], max_retries=0)
    try:
        # WHEN a batch is written
        with pytest.raises(DependencyDown) as raised:
            await OpenSearchIndex(client).write(DOCS)
    finally:
        await client.close()
    # THEN the failure names the search index as the dependency that is down
    assert raised.value.dependency == SEARCH_INDEX
    assert raised.value.message.startswith("Calling OpenSearch failed:")


async def test_search_sends_filters_as_normalised_terms_and_reads_hits(replay: Replayer) -> None:
    recorded, index = await replay("search")
    query = SearchQuery(
        text="ada analyst", skills=("Mathematics",), companies=("Analytical Engines",), limit=5
    )
    hits = await index.search(query)
    assert recorded.received == recorded.expected()
    filters = recorded.received[0]["json"]["query"]["bool"]["filter"]
    assert {"term": {"skills.keyword": "mathematics"}} in filters
    assert [(h.user_id, h.full_name, h.companies, h.score) for h in hits] == [
        (A, "Ada Lovelace", ("Analytical Engines",), 7.25)
    ]
