"""The OpenSearch backend against a live cluster; runs only when OPENSEARCH_URL answers."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator

import pytest
from opensearchpy import AsyncOpenSearch

from config.settings import Settings
from pipelines.search.opensearch import READ_ALIAS, OpenSearchIndex
from pipelines.search.ports import SearchQuery, Tombstone
from transforms.search_document import ProfileData, to_search_document

URL = Settings().opensearch_url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _answers(URL), reason=f"no OpenSearch answers at OPENSEARCH_URL ({URL})"
)


@pytest.fixture
async def index() -> AsyncIterator[OpenSearchIndex]:
    client = AsyncOpenSearch(hosts=[URL], max_retries=0)
    index = OpenSearchIndex(client)
    await index.ensure()
    yield index
    await client.close()


async def test_versioned_write_search_and_delete_on_a_live_cluster(index: OpenSearchIndex) -> None:
    uid = uuid.uuid4()
    name = f"Live Tester {uid.hex[:8]}"
    new = to_search_document(ProfileData(uid, name, "Probe", None, "public", 10, ["Acme"]))
    old = to_search_document(ProfileData(uid, name, "Older", None, "public", 9, ["Acme"]))
    assert (await index.write([new])).written == 1
    assert (await index.write([old])).stale == 1
    await index.client.indices.refresh(index=READ_ALIAS)
    hits = await index.search(SearchQuery(text=name, companies=("acme",)))
    assert [h.user_id for h in hits][:1] == [uid]
    assert (await index.write([], [Tombstone(uid, 11)])).deleted == 1
    assert await index.get(uid) is None
