"""The cluster feed store finds each feed's slot as the cluster client would."""

from __future__ import annotations

import uuid

from redis.crc import key_slot

from contracts.keys import feed_key
from pipelines.feed.cluster_feeds import _slots, _split_keys
from pipelines.feed.redis_feeds import feed_keys_resp


def test_feed_slots_match_the_cluster_clients_key_slot() -> None:
    users = [uuid.uuid4() for _ in range(2000)]
    keys = _split_keys(feed_keys_resp(users), len(users))
    chosen = list(range(0, len(users), 3))

    assert _slots(keys, chosen) == [key_slot(feed_key(users[i]).encode()) for i in chosen]
