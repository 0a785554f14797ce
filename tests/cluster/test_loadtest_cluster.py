"""`socialpipe loadtest` on a Redis Cluster: a tiny run, its key clean-up and its probe.

The run's REDIS_URL is the session cluster's `redis+cluster://` URL: the probes
read it and the workers the run starts get it, so a post counts as visible only
if the workers fanned it out into the cluster's feeds.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from config.clients import cluster_startup_nodes, is_cluster_url, open_any_redis
from contracts.keys import fanout_marker_key, feed_key
from loadtest.harness import LoadOptions, delete_keys, redis_endpoint
from loadtest.latency import FeedProbe
from store.db import drop_database, with_database
from tests.e2e.test_demo import socialpipe
from tests.settings import make_settings

LOAD_DB = f"socialpipe_loadtest_cluster_{os.getpid()}"
SMALL_GRAPH = ["--users", "300", "--median-connections", "8", "--hub-connections", "250"]


@pytest.fixture
async def load_database() -> AsyncIterator[str]:
    yield LOAD_DB
    await drop_database(with_database(make_settings().database_url, LOAD_DB))


def test_a_tiny_load_on_the_cluster_is_measured_and_loses_nothing(
    load_database: str, redis_cluster_url: str, tmp_path: Path
) -> None:
    # GIVEN REDIS_URL naming the cluster, and the primary given as the workers' read URL
    cfg = make_settings()
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": redis_cluster_url}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("DATABASE_READ_URL", None)
    # WHEN a small graph takes 240 posts/min and 20 profile updates/s for 2 + 6 seconds
    done = subprocess.run(
        [socialpipe(), "loadtest", *SMALL_GRAPH, "--emulator", "auto", "--database", load_database,
         "--database-read-url", cfg.database_url, "--posts-per-minute", "240",
         "--profile-updates-per-second", "20", "--warmup", "2", "--duration", "6",
         "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    # THEN it succeeds within the seed's SLOs, on the cluster, the workers reading the replica URL
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])["loadtest"]
    assert report["scenario"]["redis"] == "cluster"
    assert report["scenario"]["database_reads"] == "replica"
    for name, offered in (("posts", 32), ("profile updates", 160)):
        stream = report["streams"][name]
        assert stream["offered"] == stream["sent"] == offered
        assert stream["not_visible"] == 0 and stream["errors"] == 0
        assert stream["measured"] > 0
    assert sum(report["dlq"].values()) == 0
    # AND the feeds the workers wrote are spread over the cluster's masters
    holding = 0
    for host, port in cluster_startup_nodes(redis_cluster_url):
        with redis.Redis(host=host, port=port) as node:
            holding += node.dbsize() > 0
    assert holding >= 2


async def test_keys_of_many_slots_are_deleted_per_slot(cluster_client: RedisCluster) -> None:
    # GIVEN 6,000 feeds over most of the cluster's slots (more than one DEL chunk)
    keys = [feed_key(uuid.uuid4()) for _ in range(6000)]
    async with cluster_client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.lpush(key, "x")
        await pipe.execute()
    assert len({key_slot(k.encode()) for k in keys}) > 3000
    # WHEN the load tester deletes them
    await delete_keys(cluster_client, keys)
    # THEN none is left
    assert await cluster_client.dbsize() == 0


async def test_probe_tells_a_trimmed_post_on_the_cluster(cluster_client: RedisCluster) -> None:
    # GIVEN a post fanned out (one batch) to two feeds in different slots, both full without it
    post = uuid.uuid4()
    targets = [uuid.uuid4(), uuid.uuid4()]
    while key_slot(feed_key(targets[0]).encode()) == key_slot(feed_key(targets[1]).encode()):
        targets[1] = uuid.uuid4()
    await cluster_client.hset(fanout_marker_key(post), mapping={"owner": "w", "digest-0": "1"})
    for target in targets:
        await cluster_client.lpush(feed_key(target), *(str(uuid.uuid4()) for _ in range(3)))
    probe = FeedProbe(cluster_client, batch_size=2, feed_max_length=3)
    probe.watch(post, time.time(), targets)
    # WHEN the drain settles trimmed posts
    # THEN it is counted trimmed, not never visible
    assert await probe.settle_trimmed() == 1
    assert probe.pending == {}
    # AND a post missing from a feed that is not full stays pending
    other = uuid.uuid4()
    await cluster_client.hset(fanout_marker_key(other), mapping={"owner": "w", "digest-0": "1"})
    probe.watch(other, time.time(), [uuid.uuid4()])
    assert await probe.settle_trimmed() == 0
    assert str(other) in probe.pending


def test_redis_cluster_option_starts_a_cluster_and_stops_it() -> None:
    # WHEN a run asks for its own cluster
    with redis_endpoint(LoadOptions(redis_cluster=True)) as update:
        url = update["redis_url"]
        host, port = cluster_startup_nodes(url)[0]
        # THEN its URL names a cluster whose state is ok
        assert is_cluster_url(url)
        with redis.Redis(host=host, port=port) as node:
            info = node.execute_command("CLUSTER", "INFO")
            assert "cluster_state:ok" in (info.decode() if isinstance(info, bytes) else str(info))
    # AND it is gone afterwards
    with pytest.raises(redis.ConnectionError), redis.Redis(host=host, port=port) as node:
        node.ping()
    # AND without the option nothing is started
    with redis_endpoint(LoadOptions()) as update:
        assert update == {}


async def test_a_burst_of_first_commands_on_a_new_cluster_client_all_succeed(
    redis_cluster_url: str,
) -> None:
    # GIVEN a cluster client just opened from a redis+cluster:// REDIS_URL
    async with AsyncExitStack() as stack:
        client = await open_any_redis(
            stack, make_settings(redis_url=redis_cluster_url), max_connections=200
        )
        # WHEN 90 commands are its first, all at once, over every master
        keys = [feed_key(uuid.uuid4()) for _ in range(90)]
        replies = await asyncio.gather(
            *(client.lpush(key, "x") for key in keys), return_exceptions=True
        )
    # THEN every one succeeded (lazy slot discovery raced and closed connections)
    assert replies == [1] * len(keys)
