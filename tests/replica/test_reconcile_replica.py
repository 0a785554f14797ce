"""`reconcile search` and `reconcile feeds` with DATABASE_READ_URL on a real streaming replica.

With replay paused, the reports show the replica's view (so the scans read
it), and what the replica has not replayed yet is never taken for a deletion:
a fresh profile's document is not deleted as an orphan, a fresh post in a feed
is not removed as a phantom.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack

from config.reconcile import build_feed_reconciler, build_search_reconciler
from config.search import build_search_handler
from contracts.outcomes import ACK
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.feeds import FeedReconcileOptions
from reconcile.report import ReconcileReport
from reconcile.search import SearchReconcileOptions
from tests.replica.data import add_post, add_user, connect, profile_updated
from tests.replica.replication import Replication


async def reconcile_search(
    db: Replication, *, read_replica: bool, dry_run: bool
) -> ReconcileReport:
    options = SearchReconcileOptions(batch_size=10, parallelism=1, dry_run=dry_run)
    async with AsyncExitStack() as stack:
        settings = db.settings(read_replica=read_replica)
        return await (await build_search_reconciler(stack, settings, options)).run()


async def reconcile_feeds(db: Replication, *, read_replica: bool, dry_run: bool) -> ReconcileReport:
    options = FeedReconcileOptions(batch_size=10, parallelism=1, dry_run=dry_run)
    async with AsyncExitStack() as stack:
        settings = db.settings(read_replica=read_replica)
        return await (await build_feed_reconciler(stack, settings, options)).run()


async def index_from_primary(db: Replication, users: list[uuid.UUID]) -> None:
    async with AsyncExitStack() as stack:
        handler = await build_search_handler(stack, db.settings(read_replica=False))
        outcomes = await handler.handle([profile_updated(u) for u in users])
    assert list(outcomes) == [ACK] * len(users)


async def test_reconcile_search_reads_the_replica_and_keeps_unreplayed_profiles(
    replicated: Replication,
) -> None:
    old = await add_user(replicated.primary, "Old", headline="Engineer")
    await index_from_primary(replicated, [old])
    await replicated.caught_up()
    await replicated.pause_replay()
    # Not on the replica yet: a headline change (stale against the primary only)
    # and a brand-new user already indexed by the worker (looks orphaned there).
    await replicated.primary.execute(
        "UPDATE user_profiles SET headline = 'Manager' WHERE user_id = $1", old
    )
    fresh = await add_user(replicated.primary, "Fresh")
    await index_from_primary(replicated, [fresh])

    on_primary = await reconcile_search(replicated, read_replica=False, dry_run=True)
    assert (on_primary.checked, on_primary.stale, on_primary.orphaned) == (2, 1, 0)

    on_replica = await reconcile_search(replicated, read_replica=True, dry_run=False)
    # The replica's snapshot: one user, whose newer document is not drift.
    assert (on_replica.checked, on_replica.stale, on_replica.missing) == (1, 0, 0)
    # The fresh user is confirmed on the primary: not an orphan, not deleted.
    assert on_replica.orphaned == 0
    live = await PostgresSearchIndex(replicated.primary).get_many([old, fresh])
    assert set(live) == {old, fresh}


async def test_reconcile_feeds_reads_the_replica_and_keeps_unreplayed_posts(
    replicated: Replication,
) -> None:
    author = await add_user(replicated.primary, "author")
    reader = await add_user(replicated.primary, "reader")
    await connect(replicated.primary, author, [reader])
    await replicated.caught_up()
    await replicated.pause_replay()
    pushed, _ = await add_post(replicated.primary, author)  # fanned out already
    await replicated.redis.lpush(f"feed:{reader}", str(pushed))
    await add_post(replicated.primary, author)  # not fanned out yet

    on_primary = await reconcile_feeds(replicated, read_replica=False, dry_run=True)
    assert (on_primary.missing, on_primary.phantom) == (1, 0)

    on_replica = await reconcile_feeds(replicated, read_replica=True, dry_run=False)
    # The replica knows neither post: nothing missing; the pushed one is checked
    # on the primary, so it is no phantom and stays in the feed.
    assert (on_replica.missing, on_replica.phantom, on_replica.repaired) == (0, 0, 0)
    assert await replicated.redis.lrange(f"feed:{reader}", 0, -1) == [str(pushed).encode()]
