"""Hand-packed EVALSHA arguments must equal what the generic encoder would send."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from contracts.keys import feed_key
from pipelines.feed.redis_feeds import bulk, feed_keys_resp


@given(st.lists(st.uuids(), max_size=50))
def test_feed_keys_resp_matches_one_bulk_string_per_feed_key(ids: list[uuid.UUID]) -> None:
    expected = b"".join(bulk(feed_key(i).encode()) for i in ids)

    assert feed_keys_resp(ids) == expected


def test_bulk_string_carries_its_length() -> None:
    assert bulk(b"feed:x") == b"$6\r\nfeed:x\r\n"
