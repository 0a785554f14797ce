"""Distribution: execute a fan-out plan against the feed store (docs/life-of-a-post-created.md).

`parallelism` batches are in flight at once, each one atomic round trip.
Recipients whose feed failed are reported, never rolled back; the batch is not
marked done, so the handler's next attempt (the invoker's in-process retry, or
the queue's redelivery) serves only what is missing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog

from pipelines.feed.ports import BatchResult, FeedStore
from transforms.fanout import FanoutBatch, FanoutPlan

log = structlog.get_logger(__name__)

# Reconcile sets the mark before it writes a feed, and for a minute after: a
# second of staleness here is covered by that margin.
CAREFUL_MARK_CACHE_SECONDS = 1.0


@dataclass(slots=True)
class DistributionReport:
    """What one distribution of a plan did, summed over its batches."""

    written: int = 0
    skipped: int = 0
    batches_already_done: int = 0
    failed: list[uuid.UUID] = field(default_factory=list)

    def add(self, result: BatchResult) -> None:
        self.written += result.written
        self.skipped += result.skipped
        self.batches_already_done += result.already_done


class Distributor:
    """Runs the batches of a plan through a `FeedStore` with bounded concurrency."""

    def __init__(
        self,
        store: FeedStore,
        *,
        parallelism: int,
    ) -> None:
        self._store = store
        self._parallelism = parallelism
        self._careful_mark: tuple[float, float] = (0.0, -CAREFUL_MARK_CACHE_SECONDS)

    async def careful_until(self) -> float:
        """The store's careful-until mark, read at most once a second."""
        value, read_at = self._careful_mark
        now = time.monotonic()
        if now - read_at >= CAREFUL_MARK_CACHE_SECONDS:
            value = await self._store.careful_until()
            self._careful_mark = (value, now)
        return value

    async def distribute(
        self, plan: FanoutPlan, *, owner: str, careful: bool
    ) -> DistributionReport:
        """Push the plan's post to every recipient; failed recipients are in the report.

        Errors other than per-feed failures (Redis unreachable, timeouts) propagate
        after the in-flight batches are cancelled; what was written stays written.
        """
        report = DistributionReport()
        if len(plan.batches) <= 1:
            # Most posts are one batch: run it here, without a task group and a task.
            for batch in plan.batches:
                await self._run_batch(plan.post_id, batch, report, owner, careful)
            return report
        batches = iter(plan.batches)
        workers = min(self._parallelism, len(plan.batches))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._worker(plan, batches, report, owner, careful))
        except BaseExceptionGroup as eg:
            # Callers classify one error, not a group: the first one is representative.
            raise _first_leaf(eg) from None
        return report

    async def _worker(
        self,
        plan: FanoutPlan,
        batches: Iterator[FanoutBatch],
        report: DistributionReport,
        owner: str,
        careful: bool,
    ) -> None:
        # Workers share one iterator, so at most `parallelism` batches are in flight.
        for batch in batches:
            _honour_cancellation()
            await self._run_batch(plan.post_id, batch, report, owner, careful)

    async def _run_batch(
        self,
        post_id: uuid.UUID,
        batch: FanoutBatch,
        report: DistributionReport,
        owner: str,
        careful: bool,
    ) -> None:
        # No retry here: the runtime's invoker is the one layer that retries, and
        # its next call skips the batches marked done and checks before pushing.
        result = await self._store.push_batch(
            post_id, batch.recipients, digest=batch.digest, owner=owner, careful=careful
        )
        report.add(result)
        for user_id in result.failed:
            log.warning("fanout target failed", postId=str(post_id), userId=str(user_id))
        report.failed.extend(result.failed)


def _honour_cancellation() -> None:
    """Raise CancelledError if this task was asked to stop.

    The Redis client can swallow a CancelledError that arrives during a round trip
    (redis-py 8 on Python 3.11: the task keeps its pending cancel request but runs
    on), so without this check a cancelled fan-out ran to its last batch and a
    worker's shutdown grace could not cut it short. Batches are atomic, so stopping
    between them loses nothing: the redelivery serves the batches not done.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
