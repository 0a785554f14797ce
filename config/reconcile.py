"""Composition root of `socialpipe reconcile search|feeds`."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import cast

from config.clients import open_redis
from config.search import open_pool, open_search_index
from config.settings import Settings
from pipelines.search.ports import AuditableSearchIndex
from reconcile.feed_store import RedisFeedRewriter
from reconcile.feeds import FeedReconcileOptions, FeedReconciler
from reconcile.search import SearchReconcileOptions, SearchReconciler


class ReconcileUnavailable(Exception):
    """The configured backend cannot be reconciled by this build."""


async def build_search_reconciler(
    stack: AsyncExitStack, settings: Settings, options: SearchReconcileOptions
) -> SearchReconciler:
    """The search reconciler over `DATABASE_URL` and the `SEARCH_BACKEND` index."""
    pool = await open_pool(stack, settings)
    index = await open_search_index(stack, settings, pool=pool)
    if not all(hasattr(index, m) for m in ("get_many", "scan_ids", "repair")):
        raise ReconcileUnavailable(
            f"The {settings.search_backend} search backend cannot be reconciled by this build."
        )
    return SearchReconciler(pool, cast(AuditableSearchIndex, index), options)


async def build_feed_reconciler(
    stack: AsyncExitStack, settings: Settings, options: FeedReconcileOptions
) -> FeedReconciler:
    """The feed reconciler over `DATABASE_URL` and `REDIS_URL`, FEED_MAX_LENGTH applied."""
    pool = await open_pool(stack, settings)
    redis = await open_redis(stack, settings, max_connections=options.parallelism + 2)
    rewriter = RedisFeedRewriter(redis, max_length=settings.feed_max_length)
    return FeedReconciler(pool, rewriter, options)
