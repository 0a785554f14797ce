"""`socialpipe worker feed` on Kafka killed with SIGKILL in the middle of a large fan-out.

No drain, no final commit: the next worker of the group starts from the last offsets
the killed one committed, redoes exactly the records after them, and the fan-out
markers keep the redone posts from showing twice in any feed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis_asyncio

from config.settings import Settings
from consumers.kafka.topics import dlq_topic, retry_topic
from contracts.events import Envelope, PostCreated, decode_body
from contracts.keys import fanout_marker_key
from tests.integration.feed_over_sqs.helpers import eventually, feeds_holding
from tests.integration.kafka.helpers import (
    committed_offsets,
    produce,
    read_topic,
    settings_env,
)
from tests.integration.pipelines.feed.helpers import add_users, connect, create_post, feed, post_id

CONNECTIONS = 6_000
# Batches of one, one at a time: the big fan-out lasts over a second, while the small
# posts on other partitions are handled and committed within a commit interval or two
# (the kill came within the first 300 feeds in every run here). The redelivery redoes
# nearly all of it, so more connections only make the test slower.
BATCH = 1
SMALL_AUTHORS = 40


def _command() -> list[str]:
    script = Path(sys.executable).with_name("socialpipe")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import main; main()"]


async def _spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *_command(),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process, within: float) -> tuple[int, str]:
    """Exit code and stderr; a process still running after `within` is killed and reported."""
    communicating = asyncio.ensure_future(proc.communicate())
    done, _ = await asyncio.wait({communicating}, timeout=within)
    if not done:
        proc.kill()
        _, err = await communicating
        raise AssertionError(f"still running after {within} s:\n{err.decode()[-4000:]}")
    _, err = communicating.result()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _log_lines(stderr: str, message: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


async def _small_authors(db: asyncpg.Pool) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Authors with two accepted connections each, nobody shared."""
    users = await add_users(db, 3 * SMALL_AUTHORS)
    graph = {users[i]: users[i + 1 : i + 3] for i in range(0, len(users), 3)}
    for author, recipients in graph.items():
        await connect(db, author, recipients)
    return graph


async def _placement(settings: Settings) -> dict[str, tuple[int, int]]:
    """(partition, offset) of every post on the events topic, by post id."""
    return {
        post_id(decode_body(r.value)): (r.partition, r.offset)
        for r in await read_topic(settings, settings.events_topic)
    }


async def test_a_worker_killed_mid_fan_out_loses_nothing_and_no_feed_shows_a_post_twice(
    kafka_settings: Settings, db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN an author with 6,000 connections, 40 authors with two each,
    # and all their posts on the events topic, the big one first
    author, *fans = await add_users(db, CONNECTIONS + 1)
    await connect(db, author, fans)
    small = await _small_authors(db)
    big = await create_post(db, author)
    smalls = [await create_post(db, a) for a in small]
    posts: dict[str, Envelope] = {post_id(e): e for e in [big, *smalls]}
    await produce(kafka_settings, list(posts.values()))
    placed = await _placement(kafka_settings)
    big_post = post_id(big)
    big_partition = placed[big_post][0]
    behind = {p for p, (part, _) in placed.items() if part == big_partition and p != big_post}
    assert behind, "no small post shares the big post's partition; add authors"
    queue = kafka_settings.feed_queue
    env = settings_env(
        kafka_settings, FANOUT_BATCH_SIZE=str(BATCH), FANOUT_PARALLELISM="1", LOG_LEVEL="WARNING"
    )
    # WHEN a feed worker process is killed (SIGKILL) once the big fan-out is under way
    # and the worker has committed offsets of posts on other partitions
    proc = await _spawn(env, "worker", "feed")

    async def mid_batch() -> bool:
        # The marker holds the owner field plus one field per finished batch.
        if await redis_client.hlen(fanout_marker_key(big_post)) < 2:
            return False
        committed = await committed_offsets(kafka_settings, queue, kafka_settings.events_topic)
        return any(off > 0 for part, off in committed.items() if part != big_partition)

    try:
        await eventually(mid_batch, within=30, what="big fan-out under way, others committed")
    finally:
        proc.kill()
    await proc.wait()
    # THEN some but not all of the big post's feeds hold it, and nothing queued behind it ran
    held = await feeds_holding(redis_client, fans, big_post)
    holding = sum(held.values())
    assert max(held.values()) == 1
    assert 0 < holding < CONNECTIONS, "the fan-out was not interrupted; make it slower"
    for post in behind:
        recipients = small[_author_of(posts[post])]
        assert set((await feeds_holding(redis_client, recipients, post)).values()) == {0}
    # AND the killed worker's commits stop short of the big post
    committed = await committed_offsets(kafka_settings, queue, kafka_settings.events_topic)
    redo = {p for p, (part, off) in placed.items() if off >= committed.get(part, 0)}
    assert {big_post} | behind <= redo < set(posts)

    # WHEN a burst worker of the same group runs
    code, err = await _finish(
        await _spawn({**env, "LOG_LEVEL": "DEBUG"}, "worker", "feed", "--burst"), 60
    )
    # THEN it exits 0 having redone exactly the uncommitted posts, each once
    assert code == 0, err
    reports = _log_lines(err, "post fanned out")
    assert sorted(r["postId"] for r in reports) == sorted(redo)
    # AND the big post's redelivery wrote only the feeds the killed worker had not reached
    [again] = [r for r in reports if r["postId"] == big_post]
    assert (again["written"], again["skipped"]) == (CONNECTIONS - holding, 0)
    # AND every recipient's feed holds its author's post exactly once
    assert await feeds_holding(redis_client, fans, big_post) == dict.fromkeys(fans, 1)
    for post, envelope in posts.items():
        if post != big_post:
            for user in small[_author_of(envelope)]:
                assert await feed(redis_client, user) == [post]
    # AND the group is fully committed, with nothing retried or dead-lettered
    ends = _end_offsets(placed.values())
    after = await committed_offsets(kafka_settings, queue, kafka_settings.events_topic)
    assert {p: after.get(p, 0) for p in ends} == ends
    assert await read_topic(kafka_settings, retry_topic(queue)) == []
    assert await read_topic(kafka_settings, dlq_topic(queue)) == []


def _end_offsets(placed: Iterable[tuple[int, int]]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for part, off in placed:
        ends[part] = max(ends.get(part, 0), off + 1)
    return ends


def _author_of(envelope: Envelope) -> uuid.UUID:
    assert isinstance(envelope.payload, PostCreated)
    return envelope.payload.author_id
