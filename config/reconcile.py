"""Composition root of `socialpipe reconcile search|feeds|notifications`."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg

from config.clients import open_any_redis
from config.search import open_pool, open_read_pool
from config.settings import Settings
from pipelines.search.ports import AuditableSearchIndex
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.feed_store import RedisFeedRewriter
from reconcile.feeds import FeedReconcileOptions, FeedReconciler
from reconcile.notifications import NotificationReconcileOptions, NotificationReconciler
from reconcile.search import SearchReconcileOptions, SearchReconciler


class ReconcileUnavailable(Exception):
    """The configured backend cannot be reconciled by this build."""


async def build_search_reconciler(
    stack: AsyncExitStack, settings: Settings, options: SearchReconcileOptions
) -> SearchReconciler:
    """The search reconciler over `DATABASE_URL` and the `SEARCH_BACKEND` index.

    Profiles are scanned on `DATABASE_READ_URL` when it is set; the index and
    the orphan checks stay on the primary.
    """
    pool = await open_pool(stack, settings)
    scan = await open_read_pool(stack, settings)
    index = await _auditable_index(stack, settings, pool)
    return SearchReconciler(scan or pool, index, options, primary=pool)


async def _auditable_index(
    stack: AsyncExitStack, settings: Settings, pool: asyncpg.Pool
) -> AuditableSearchIndex:
    # Both backends implement the reconciliation port; typed here, so a backend
    # added without it fails type checking instead of a nightly run.
    if settings.search_backend == "opensearch":
        from pipelines.search.opensearch import open_opensearch_index

        return await open_opensearch_index(stack, settings.opensearch_url)
    return PostgresSearchIndex(pool)


async def build_feed_reconciler(
    stack: AsyncExitStack, settings: Settings, options: FeedReconcileOptions
) -> FeedReconciler:
    """The feed reconciler over `DATABASE_URL` and `REDIS_URL`, FEED_MAX_LENGTH applied.

    Users and their expected posts are scanned on `DATABASE_READ_URL` when it is
    set; a post a feed holds that the scan did not expect is checked on the primary.
    """
    pool = await open_pool(stack, settings)
    scan = await open_read_pool(stack, settings)
    redis = await open_any_redis(stack, settings, max_connections=options.parallelism + 2)
    rewriter = RedisFeedRewriter(redis, max_length=settings.feed_max_length)
    return FeedReconciler(scan or pool, rewriter, options, primary=pool)


async def build_notification_reconciler(
    stack: AsyncExitStack, settings: Settings, options: NotificationReconcileOptions
) -> NotificationReconciler:
    """The notification reconciler over `DATABASE_URL` (rows) and `REDIS_URL` (counters)."""
    pool = await open_pool(stack, settings)
    redis = await open_any_redis(stack, settings, max_connections=options.parallelism + 2)
    return NotificationReconciler(pool, redis, options)
