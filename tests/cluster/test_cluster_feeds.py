"""What only a Redis Cluster has: its URL, and slots migrating during a fan-out.

The feed paths that both topologies share run on the cluster as well as on one
node through the `feed_redis` fixture (tests/integration/pipelines/feed and
feed_over_sqs, tests/integration/reconcile).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from config.clients import cluster_startup_nodes, is_cluster_url
from contracts.keys import feed_key
from pipelines.feed.cluster_feeds import ClusterFeedStore


def _store(client: RedisCluster, max_length: int = 800) -> ClusterFeedStore:
    return ClusterFeedStore(client, max_length=max_length, marker_ttl=3600, first_pause=0.02)


def _users(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


async def _occurrences(
    client: RedisCluster, users: Sequence[uuid.UUID], post: uuid.UUID
) -> set[int]:
    """How many times `post` is in each user's feed (the set of distinct counts)."""
    async with client.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.lrange(feed_key(user), 0, -1)
        feeds = await pipe.execute()
    return {feed.count(str(post).encode()) for feed in feeds}


def test_the_cluster_url_names_its_seed_nodes() -> None:
    url = "redis+cluster://10.0.0.1:7000,[::1]:7001/0"
    assert is_cluster_url(url) and not is_cluster_url("redis://127.0.0.1:6379/0")
    assert cluster_startup_nodes(url) == [("10.0.0.1", 7000), ("::1", 7001)]
    with pytest.raises(ValueError, match="only database 0"):
        cluster_startup_nodes("redis+cluster://127.0.0.1:7000/3")


async def _evalsha_calls(client: RedisCluster) -> int:
    total = 0
    for node in client.get_primaries():
        stats = await node.execute_command("INFO", "commandstats")
        total += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return total


async def test_on_redis_7_a_batch_costs_one_script_call_per_master(
    cluster_client: RedisCluster,
) -> None:
    # GIVEN a cluster of Redis 7 or newer (script flags let one call push many slots)
    await cluster_client.initialize()
    info = await cluster_client.get_primaries()[0].execute_command("INFO", "server")
    version = str(info["redis_version"])
    if int(version.split(".")[0]) < 7:
        pytest.skip(f"Redis {version}: one script call per feed by design")
    store, users = _store(cluster_client), _users(300)
    await store.push_batch(uuid.uuid4(), users[:1], digest="warm", owner="a", careful=False)
    before = await _evalsha_calls(cluster_client)

    # WHEN a batch of 300 feeds spread over the three masters is pushed
    result = await store.push_batch(uuid.uuid4(), users, digest="d", owner="a", careful=False)

    # THEN every feed is written by one call per master, plus the marker's claim and finish
    assert (result.written, result.failed) == (300, ())
    assert await _evalsha_calls(cluster_client) - before == 3 + 2


# --- resharding ----------------------------------------------------------------------


def _user_in_slot(slot: int) -> uuid.UUID:
    while True:
        user = uuid.uuid4()
        if key_slot(feed_key(user).encode()) == slot:
            return user


async def _node_id(node: ClusterNode) -> str:
    raw = await node.execute_command("CLUSTER", "MYID")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _move_remaining_keys(source: ClusterNode, target: ClusterNode, slot: int) -> None:
    """What `redis-cli --cluster reshard` does before it hands the slot over."""
    keys = await source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    if keys:
        await source.execute_command(
            "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys
        )


async def test_a_slot_migrated_during_a_fan_out_loses_and_duplicates_nothing(
    cluster_client: RedisCluster,
) -> None:
    store, users = _store(cluster_client), _users(3000)
    mover = users[7]
    slot = key_slot(feed_key(mover).encode())
    newcomer = _user_in_slot(slot)  # no feed yet: the source redirects it with ASK
    everyone = [*users, newcomer]
    posts = [uuid.uuid4() for _ in range(3)]
    await store.push_batch(posts[0], users, digest="d0", owner="a", careful=False)

    await cluster_client.initialize()
    source = cluster_client.nodes_manager.get_node_from_slot(slot)
    target = next(n for n in cluster_client.get_primaries() if n.name != source.name)
    source_id, target_id = await _node_id(source), await _node_id(target)
    await target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    await source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    await source.execute_command(
        "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", feed_key(mover)
    )

    # Mid-migration: the moved feed and the new one are answered with ASK.
    during = await store.push_batch(posts[1], everyone, digest="d1", owner="a", careful=False)
    await _move_remaining_keys(source, target, slot)
    others = [n for n in cluster_client.get_primaries() if n.name not in (source.name, target.name)]
    for node in [target, source, *others]:
        await node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    # Migrated: the client's slot map is stale, so the slot's feeds get MOVED.
    after = await store.push_batch(posts[2], everyone, digest="d2", owner="a", careful=False)

    assert (during.written, during.failed) == (3001, ())
    assert (after.written, after.failed) == (3001, ())
    assert await _occurrences(cluster_client, users, posts[0]) == {1}
    for post in posts[1:]:
        assert await _occurrences(cluster_client, everyone, post) == {1}
    assert await store.head(mover, 3) == posts[::-1]


async def test_feeds_redirected_for_too_long_fail_alone_and_are_retried_alone(
    cluster_client: RedisCluster,
) -> None:
    store, post = _store(cluster_client), uuid.uuid4()
    users = _users(400)
    slot = key_slot(feed_key(users[0]).encode())
    everyone = [*users, _user_in_slot(slot)]
    stuck = {u for u in everyone if key_slot(feed_key(u).encode()) == slot}
    await cluster_client.initialize()
    source = cluster_client.nodes_manager.get_node_from_slot(slot)
    target = next(n for n in cluster_client.get_primaries() if n.name != source.name)
    # Migrating with no node importing: the source answers ASK, the target MOVED back.
    await source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", await _node_id(target))
    try:
        first = await store.push_batch(post, everyone, digest="d", owner="a", careful=False)
    finally:
        await source.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
    second = await store.push_batch(post, everyone, digest="d", owner="b", careful=False)

    assert first.written == len(everyone) - len(stuck) and set(first.failed) == stuck
    assert (second.written, second.failed) == (len(stuck), ())
    assert await _occurrences(cluster_client, everyone, post) == {1}
