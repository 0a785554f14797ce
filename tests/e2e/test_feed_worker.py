"""`socialpipe worker feed` as a process: SIGTERM in the middle of a large fan-out, and
the documented start-up path (`queues create`, publish, `worker feed --burst`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from config.settings import Settings
from consumers.topology import ensure_topology
from contracts.keys import fanout_marker_key
from pipelines.relay.sns import publish_events
from tests.integration.consumers.helpers import depth
from tests.integration.feed_over_sqs.helpers import FEED, eventually, feeds_holding, small_graph
from tests.integration.pipelines.feed.helpers import add_users, connect, create_post, post_id

CONNECTIONS = 12_000
# Tiny batches, one at a time, so the fan-out lasts long enough to be interrupted:
# about 0.9 s here (0.3 s with batches of 5, 0.1 s with 20), while SIGTERM plus the
# shutdown grace lands about 0.1 s after the first batch is done.
BATCH = 2
MARKER_FIELDS = frozenset({b"owner", b"shared"})


def _command() -> list[str]:
    script = Path(sys.executable).with_name("socialpipe")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import main; main()"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "METRICS_PORT": "0",
        "POLLERS": "1",
        "RECEIVE_WAIT_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def _spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *_command(),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process, within: float) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _done_batches(client: redis_asyncio.Redis, post: str) -> set[bytes]:
    fields = await client.hkeys(fanout_marker_key(post))
    return {f if isinstance(f, bytes) else f.encode() for f in fields} - MARKER_FIELDS


def _log_lines(stderr: str, message: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


async def test_sigterm_mid_fan_out_loses_nothing_and_redelivery_writes_only_missing_batches(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN an author with 12,000 accepted connections and their post published
    author, *others = await add_users(db, CONNECTIONS + 1)
    await connect(db, author, others)
    topo = await ensure_topology(sqs, sns, settings)
    event = await create_post(db, author)
    post = post_id(event)
    await publish_events(sns, topo.topic_arn, [event])
    env = _env(
        settings,
        FANOUT_BATCH_SIZE=str(BATCH),
        FANOUT_PARALLELISM="1",
        SHUTDOWN_GRACE_SECONDS="0.05",
        VISIBILITY_TIMEOUT="5",
    )
    # WHEN a feed worker process gets SIGTERM once some batches are done
    proc = await _spawn(env, "worker", "feed")

    async def started() -> bool:
        return len(await _done_batches(redis_client, post)) >= 1

    try:
        await eventually(started, within=30, what="fan-out under way")
    finally:
        proc.send_signal(signal.SIGTERM)
    code, _, err = await _finish(proc, 30)
    # THEN it exits 0 having served whole batches only, some but not all feeds
    assert code == 0, err
    before = await _done_batches(redis_client, post)
    held = await feeds_holding(redis_client, others, post)
    holding = sum(held.values())
    assert max(held.values()) == 1
    assert 0 < holding < CONNECTIONS, "the fan-out was not interrupted; make it slower"
    assert holding == len(before) * BATCH
    # WHEN the redelivered message is handled by a burst worker
    code, _, err = await _finish(
        await _spawn({**env, "LOG_LEVEL": "DEBUG"}, "worker", "feed", "--burst"), 60
    )
    # THEN every connection holds the post exactly once
    assert code == 0, err
    held = await feeds_holding(redis_client, others, post)
    assert held == dict.fromkeys(others, 1)
    # AND the second run wrote only the missing feeds, never re-entering a done batch
    [report] = _log_lines(err, "post fanned out")
    assert report["written"] == CONNECTIONS - holding
    assert report["skipped"] == 0
    after = await _done_batches(redis_client, post)
    assert before < after
    assert len(after) == CONNECTIONS // BATCH
    assert await depth(sqs, topo.queue_url(FEED)) == 0
    assert await depth(sqs, topo.dlq_url(FEED)) == 0


async def test_queues_create_then_burst_worker_updates_feeds_and_exits_zero(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN queues created by the CLI and a post published to the topic
    code, out, err = await _finish(await _spawn(_env(settings), "queues", "create"), 30)
    assert code == 0, err
    assert f"queue {FEED}: " in out
    graph = await small_graph(db)
    event = await create_post(db, graph.author)
    topic = (await sns.create_topic(Name=settings.events_topic))["TopicArn"]
    await publish_events(sns, topic, [event])
    # WHEN `socialpipe worker feed --burst` runs
    code, _, err = await _finish(await _spawn(_env(settings), "worker", "feed", "--burst"), 30)
    # THEN it exits 0 and every connection's feed holds the post, nobody else's
    assert code == 0, err
    held = await feeds_holding(redis_client, graph.connections, post_id(event))
    assert held == dict.fromkeys(graph.connections, 1)
    outsiders = await feeds_holding(redis_client, graph.outsiders, post_id(event))
    assert outsiders == dict.fromkeys(graph.outsiders, 0)
    url = (await sqs.get_queue_url(QueueName=FEED))["QueueUrl"]
    assert await depth(sqs, url) == 0
