"""Composition root of `socialpipe reconcile search|feeds|notifications`."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, Final, Literal

import asyncpg
import structlog

from config.clients import open_any_redis, open_sqs
from config.search import open_pool, open_read_pool
from config.settings import Settings
from config.worker import pipeline_queue
from contracts.metrics import RECONCILE_RATE
from contracts.pacing import AdaptiveOptions, AdaptivePacer, Backlog, Pacer
from pipelines.search.ports import AuditableSearchIndex
from pipelines.search.postgres import PostgresSearchIndex
from reconcile.feed_store import RedisFeedRewriter
from reconcile.feeds import FeedReconcileOptions, FeedReconciler
from reconcile.notifications import NotificationReconcileOptions, NotificationReconciler
from reconcile.search import SearchReconcileOptions, SearchReconciler


class ReconcileUnavailable(Exception):
    """The configured backend cannot be reconciled by this build."""


Pace = Literal["adaptive", "fixed"]
Reconciled = Literal["search", "feed", "notifications"]
# The adaptive pace starts here and never goes below FLOOR, so a run always ends.
START_RATE: Final = 200.0
FLOOR_RATE: Final = 50.0
# Backlog reads that may fail in a row before the run stops asking (it logs why).
BACKLOG_FAILURES: Final = 3

log = structlog.get_logger("reconcile")


async def reconcile_pacer(
    stack: AsyncExitStack,
    settings: Settings,
    reconciled: Reconciled,
    *,
    pace: Pace,
    max_rate: float | None,
) -> Pacer | None:
    """The pace of a run: None for `fixed` (the reconciler limits itself to
    `--max-rate`), else an `AdaptivePacer` under `--max-rate` that watches the
    live queue of the pipeline whose read model is reconciled (SQS only) and
    its own latency (docs/reconciliation.md, "Pace")."""
    if pace == "fixed":
        return None
    gauge = RECONCILE_RATE.labels(reconciled)

    def changed(rate: float, why: str) -> None:
        gauge.set(rate)
        log.debug("reconcile pace changed", reconciler=reconciled, rate=round(rate), reason=why)

    backlog = live_backlog(stack, settings, reconciled)
    options = AdaptiveOptions(
        ceiling=max_rate,
        floor=min(FLOOR_RATE, max_rate or FLOOR_RATE),
        start=min(START_RATE, max_rate or START_RATE),
    )
    pacer = AdaptivePacer(options, backlog, on_change=changed)
    gauge.set(pacer.rate)
    return pacer


def live_backlog(
    stack: AsyncExitStack, settings: Settings, reconciled: Reconciled
) -> Backlog | None:
    """Messages waiting in the live queue of `reconciled`'s pipeline (SQS only: on
    Kafka the pace watches its own latency, and consumer lag is the dashboards')."""
    if settings.event_transport != "sqs":
        return None
    return _QueueBacklog(stack, settings, pipeline_queue(settings, reconciled))


class _QueueBacklog:
    """`ApproximateNumberOfMessages` of one SQS queue; after BACKLOG_FAILURES failed
    reads in a row it stops asking, with one warning."""

    def __init__(self, stack: AsyncExitStack, settings: Settings, queue: str) -> None:
        self._stack, self._settings, self._queue = stack, settings, queue
        self._sqs: Any = None
        self._url: str | None = None
        self._failures = 0

    async def __call__(self) -> int | None:
        if self._failures >= BACKLOG_FAILURES:
            return None
        try:
            if self._sqs is None:
                self._sqs = await open_sqs(self._stack, self._settings)
            if self._url is None:
                self._url = (await self._sqs.get_queue_url(QueueName=self._queue))["QueueUrl"]
            got = await self._sqs.get_queue_attributes(
                QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        except Exception as exc:
            self._failures += 1
            if self._failures == BACKLOG_FAILURES:
                log.warning(
                    "reconcile pace cannot read the live queue; watching its own latency only",
                    queue=self._queue,
                    errorType=type(exc).__name__,
                )
            raise
        self._failures = 0
        return int(got["Attributes"]["ApproximateNumberOfMessages"])


async def build_search_reconciler(
    stack: AsyncExitStack,
    settings: Settings,
    options: SearchReconcileOptions,
    *,
    pace: Pace = "fixed",
) -> SearchReconciler:
    """The search reconciler over `DATABASE_URL` and the `SEARCH_BACKEND` index.

    Profiles are scanned on `DATABASE_READ_URL` when it is set; the index and
    the orphan checks stay on the primary.
    """
    pool = await open_pool(stack, settings)
    scan = await open_read_pool(stack, settings)
    index = await _auditable_index(stack, settings, pool)
    pacer = await reconcile_pacer(stack, settings, "search", pace=pace, max_rate=options.max_rate)
    return SearchReconciler(scan or pool, index, options, primary=pool, pacer=pacer)


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
    stack: AsyncExitStack,
    settings: Settings,
    options: FeedReconcileOptions,
    *,
    pace: Pace = "fixed",
) -> FeedReconciler:
    """The feed reconciler over `DATABASE_URL` and `REDIS_URL`, FEED_MAX_LENGTH applied.

    Users and their expected posts are scanned on `DATABASE_READ_URL` when it is
    set; a post a feed holds that the scan did not expect is checked on the primary.
    """
    pool = await open_pool(stack, settings)
    scan = await open_read_pool(stack, settings)
    redis = await open_any_redis(stack, settings, max_connections=options.parallelism + 2)
    rewriter = RedisFeedRewriter(redis, max_length=settings.feed_max_length)
    pacer = await reconcile_pacer(stack, settings, "feed", pace=pace, max_rate=options.max_rate)
    return FeedReconciler(scan or pool, rewriter, options, primary=pool, pacer=pacer)


async def build_notification_reconciler(
    stack: AsyncExitStack,
    settings: Settings,
    options: NotificationReconcileOptions,
    *,
    pace: Pace = "fixed",
) -> NotificationReconciler:
    """The notification reconciler over `DATABASE_URL` (rows) and `REDIS_URL` (counters)."""
    pool = await open_pool(stack, settings)
    redis = await open_any_redis(stack, settings, max_connections=options.parallelism + 2)
    pacer = await reconcile_pacer(
        stack, settings, "notifications", pace=pace, max_rate=options.max_rate
    )
    return NotificationReconciler(pool, redis, options, pacer=pacer)
