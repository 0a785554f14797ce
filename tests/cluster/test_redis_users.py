"""The other Redis users on a real Redis Cluster: notifications, the API, `reconcile feeds`.

Each is built by its composition root from a `redis+cluster://` REDIS_URL, over
the test PostgreSQL, and checked through the same keys a single node holds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from config.api import build_api
from config.clients import open_any_redis
from config.feed import build_feed_handler
from config.notifications import build_notifications_handler
from config.reconcile import build_feed_reconciler, build_notification_reconciler
from config.startup import DependencyStartError, probe_redis
from contracts.keys import (
    careful_until_key,
    counted_notification_key,
    feed_key,
    notifications_channel,
    unread_notifications_key,
)
from contracts.outcomes import ACK
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.feeds import FeedReconcileOptions
from reconcile.notifications import NotificationReconcileOptions
from store.connections import PgConnectionSource
from tests.factories import connection_requested, post_created
from tests.integration.api.client import SECRET, Api
from tests.integration.reconcile.pipeline_state import USERS, seed_world
from tests.settings import SettingsFactory


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def _new_user(db: asyncpg.Pool) -> uuid.UUID:
    return await db.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@example.com"
    )


async def _owner(client: RedisCluster, key: str) -> str:
    """The name (host:port) of the master that owns `key`'s slot."""
    await client.initialize()
    node = client.get_node_from_key(key)
    assert node is not None
    return node.name


async def test_open_any_redis_gives_a_cluster_client_for_a_cluster_url(
    redis_cluster_url: str, settings_factory: SettingsFactory, stack: AsyncExitStack
) -> None:
    client = await open_any_redis(stack, settings_factory(redis_url=redis_cluster_url))
    assert isinstance(client, RedisCluster)
    assert await client.ping()


async def test_the_start_up_probe_accepts_a_cluster_url_and_names_it_when_down(
    redis_cluster_url: str, settings_factory: SettingsFactory
) -> None:
    # One seed that does not answer is fine while another does
    dead = "127.0.0.1:1"
    alive = redis_cluster_url.replace("redis+cluster://", f"redis+cluster://{dead},")
    await probe_redis(settings_factory(redis_url=alive))
    with pytest.raises(DependencyStartError) as raised:
        await probe_redis(settings_factory(redis_url=f"redis+cluster://{dead}/0"))
    assert dead in str(raised.value) and "Redis" in str(raised.value)


async def test_notifications_are_counted_once_per_event_and_published_across_nodes(
    db: asyncpg.Pool,
    cluster_client: RedisCluster,
    redis_cluster_url: str,
    settings_factory: SettingsFactory,
    stack: AsyncExitStack,
) -> None:
    # GIVEN a handler built from a cluster URL, and a subscriber on a master that does
    # NOT own the addressee's counter
    a, b = await _new_user(db), await _new_user(db)
    settings = settings_factory(redis_url=redis_cluster_url)
    handler = await build_notifications_handler(stack, settings, pool=db)
    owner = await _owner(cluster_client, unread_notifications_key(b))
    other = next(n for n in cluster_client.get_primaries() if n.name != owner)
    listener = redis_asyncio.Redis(host=other.host, port=int(other.port))
    stack.push_async_callback(listener.aclose)
    pubsub = listener.pubsub()
    stack.push_async_callback(pubsub.aclose)
    await pubsub.subscribe(notifications_channel(b))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    # WHEN the same request event is delivered three times, and another event once
    first = connection_requested(requester_id=a, addressee_id=b)
    second = connection_requested(requester_id=uuid.uuid4(), addressee_id=b)
    outcomes = [o for _ in range(3) for o in await handler.handle([first])]
    outcomes += await handler.handle([second])
    # THEN each event was counted once, in the recipient's hash-tagged keys of one slot
    assert outcomes == [ACK] * 4
    assert int(await cluster_client.get(unread_notifications_key(b)) or 0) == 2
    counted = [counted_notification_key(b, e.event_id) for e in (first, second)]
    assert await cluster_client.exists(*counted) == 2
    slots = {key_slot(k.encode()) for k in (unread_notifications_key(b), *counted)}
    assert len(slots) == 1
    # AND the script's PUBLISH reached the subscriber on another node, once per event
    heard = []
    while message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=2):
        heard.append(orjson.loads(message["data"])["eventId"])
    assert heard == [str(first.event_id), str(second.event_id)]


async def test_notification_reconcile_fixes_counters_spread_over_the_cluster(
    db: asyncpg.Pool,
    cluster_client: RedisCluster,
    redis_cluster_url: str,
    settings_factory: SettingsFactory,
    stack: AsyncExitStack,
) -> None:
    # GIVEN users whose counters (on several nodes) disagree with their unread rows
    users = [await _new_user(db) for _ in range(12)]
    for user in users:
        await db.execute(
            "INSERT INTO notifications (event_id, user_id, kind)"
            " VALUES ($1, $2, 'comment_created')",
            uuid.uuid4(),
            user,
        )
    nodes = {await _owner(cluster_client, unread_notifications_key(u)) for u in users}
    assert len(nodes) > 1
    for user in users[:6]:
        await cluster_client.set(unread_notifications_key(user), 7)
    for user in users[6:9]:
        await cluster_client.set(unread_notifications_key(user), 1)
    # WHEN `reconcile notifications` runs from a cluster URL
    settings = settings_factory(redis_url=redis_cluster_url)
    options = NotificationReconcileOptions(batch_size=5)
    report = await (await build_notification_reconciler(stack, settings, options)).run()
    # THEN the 6 wrong and 3 missing counters were set, and each now reads 1
    assert (report.counters, report.repaired, report.failed) == (9, 9, 0)
    values = [await cluster_client.get(unread_notifications_key(u)) for u in users]
    assert values == [b"1"] * len(users)


@pytest.fixture
async def cluster_api(
    db: asyncpg.Pool, redis_cluster_url: str, settings_factory: SettingsFactory
) -> AsyncIterator[Api]:
    """The in-process API with its Redis opened from the cluster URL."""
    settings = settings_factory(api_token_secret=SECRET, redis_url=redis_cluster_url)
    async with AsyncExitStack() as stack:
        app = await build_api(
            stack,
            settings,
            pool=db,
            search=PostgresSearchIndex(db),
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Api(client)


async def test_api_reads_feed_pages_and_unread_count_from_the_cluster(
    cluster_api: Api, db: asyncpg.Pool, cluster_client: RedisCluster
) -> None:
    # GIVEN A's feed on the cluster holding three of B's posts, and one unread row
    a, a_id = await cluster_api.register("cluster-reader@example.com")
    b, _ = await cluster_api.register("cluster-writer@example.com", "Bo Writer")
    ids = []
    for text in ("one", "two", "three"):
        post = await cluster_api.ok(
            "mutation($t: String!) { createPost(textContent: $t) { id } }", {"t": text}, b
        )
        ids.append(post["createPost"]["id"])
    await cluster_client.lpush(feed_key(a_id), *ids)
    await db.execute(
        "INSERT INTO notifications (event_id, user_id, kind) VALUES ($1, $2, 'comment_created')",
        uuid.uuid4(),
        uuid.UUID(a_id),
    )
    await cluster_client.set(unread_notifications_key(a_id), 1)
    # WHEN A reads the feed two at a time, and the unread count
    q = "query($a: String) { feed(first: 2, after: $a) { items { textContent } nextCursor } }"
    page1 = (await cluster_api.ok(q, {"a": None}, a))["feed"]
    page2 = (await cluster_api.ok(q, {"a": page1["nextCursor"]}, a))["feed"]
    unread = await cluster_api.ok("{ unreadNotifications }", token=a)
    # THEN newest first, the pages join up, and the count is the cluster's
    assert [i["textContent"] for i in page1["items"]] == ["three", "two"]
    assert [i["textContent"] for i in page2["items"]] == ["one"]
    assert page2["nextCursor"] is None
    assert unread["unreadNotifications"] == 1
    # AND marking read resets the counter on the cluster
    await cluster_api.ok("mutation { markNotificationsRead }", token=a)
    assert await cluster_client.get(unread_notifications_key(a_id)) == b"0"


async def _feeds(client: RedisCluster, users: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """Every non-empty feed of `users`, newest first."""
    async with client.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.lrange(feed_key(user), 0, -1)
        raw = await pipe.execute()
    return {u: [v.decode() for v in got] for u, got in zip(users, raw, strict=True) if got}


async def test_reconcile_feeds_built_from_a_cluster_url_repairs_and_marks_careful_until(
    db: asyncpg.Pool,
    cluster_client: RedisCluster,
    redis_cluster_url: str,
    settings_factory: SettingsFactory,
    stack: AsyncExitStack,
) -> None:
    """Every drift kind on the cluster is covered by tests/integration/reconcile
    (`feed_redis`); this is `socialpipe reconcile feeds` composed from a cluster URL."""
    # GIVEN feeds on the cluster as the feed worker built them, 30 of them missing an entry
    settings = settings_factory(redis_url=redis_cluster_url, feed_max_length=800)
    users, posts = await seed_world(db)
    handler = await build_feed_handler(stack, settings, connection_source=PgConnectionSource(db))
    for post, author, at in posts:
        event = post_created(author_id=author, post_id=post, occurred_at=at)
        assert await handler.handle([event]) == [ACK]
    produced = await _feeds(cluster_client, users)
    owners = sorted(produced, key=lambda u: (-len(produced[u]), u))
    for user in owners[0:30]:
        await cluster_client.lrem(feed_key(user), 1, produced[user][1])

    async def reconcile(*, dry_run: bool = False) -> tuple[int, int]:
        opts = FeedReconcileOptions(max_length=800, batch_size=300, dry_run=dry_run)
        async with AsyncExitStack() as run:
            report = await (await build_feed_reconciler(run, settings, opts)).run()
        assert report.checked == USERS
        return report.missing, report.repaired

    # WHEN the reconciler built from the cluster URL checks and repairs every feed
    # THEN the dry run counts the 30 without writing, the repair restores them all
    assert await reconcile(dry_run=True) == (30, 0)
    assert await reconcile() == (30, 30)
    assert await reconcile() == (0, 0)
    assert await _feeds(cluster_client, users) == produced
    # AND the careful-until mark, one key on its own slot, lingers past the run
    assert float(await cluster_client.get(careful_until_key()) or 0) > time.time()
