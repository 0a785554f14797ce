"""A feed list may hold a few entries past FEED_MAX_LENGTH for a while (the fan-out
trims in amortised steps); the API's pages never show them."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from contracts.keys import feed_key
from tests.integration.api.client import Api

MAX_LENGTH = 3
PAGE = "query($a: String) { feed(first: 2, after: $a) { items { textContent } nextCursor } }"


@pytest.fixture
def api_overrides() -> dict[str, Any]:
    return {"feed_max_length": MAX_LENGTH}


async def test_pages_stop_at_the_feed_max_length_whatever_the_list_holds(
    api: Api, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN a feed list holding five posts where the limit is three
    reader, reader_id = await api.register("reader@example.com")
    writer, _ = await api.register("writer@example.com", "Wren Writer")
    for text in ("1", "2", "3", "4", "5"):
        post = await api.ok(
            "mutation($t: String!) { createPost(textContent: $t) { id } }", {"t": text}, writer
        )
        await redis_client.lpush(feed_key(reader_id), post["createPost"]["id"])

    # WHEN the reader pages through it, and asks for more than the limit at once
    first = (await api.ok(PAGE, {"a": None}, reader))["feed"]
    second = (await api.ok(PAGE, {"a": first["nextCursor"]}, reader))["feed"]
    whole = await api.ok("{ feed(first: 50) { items { textContent } nextCursor } }", None, reader)

    # THEN only the newest three are ever shown, and the last page says there is no more
    assert [i["textContent"] for i in first["items"]] == ["5", "4"]
    assert [i["textContent"] for i in second["items"]] == ["3"]
    assert second["nextCursor"] is None
    assert [i["textContent"] for i in whole["feed"]["items"]] == ["5", "4", "3"]
    assert whole["feed"]["nextCursor"] is None
