"""Composition root of `socialpipe reconcile search|feeds|notifications`."""

from __future__ import annotations

from contextlib import AsyncExitStack

import asyncpg

from config.clients import open_redis
from config.search import open_pool
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
    """The search reconciler over `DATABASE_URL` and the `SEARCH_BACKEND` index."""
    pool = await open_pool(stack, settings)
    return SearchReconciler(pool, await _auditable_index(stack, settings, pool), options)


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
    """The feed reconciler over `DATABASE_URL` and `REDIS_URL`, FEED_MAX_LENGTH applied."""
    pool = await open_pool(stack, settings)
    redis = await open_redis(stack, settings, max_connections=options.parallelism + 2)
    rewriter = RedisFeedRewriter(redis, max_length=settings.feed_max_length)
    return FeedReconciler(pool, rewriter, options)


async def build_notification_reconciler(
    stack: AsyncExitStack, settings: Settings, options: NotificationReconcileOptions
) -> NotificationReconciler:
    """The notification reconciler over `DATABASE_URL` (rows) and `REDIS_URL` (counters)."""
    pool = await open_pool(stack, settings)
    redis = await open_redis(stack, settings, max_connections=options.parallelism + 2)
    return NotificationReconciler(pool, redis, options)
