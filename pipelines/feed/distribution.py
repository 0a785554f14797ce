"""Distribution: execute a fan-out plan against the feed store (DESIGN §5).

`parallelism` batches are in flight at once, each one atomic round trip.
A batch whose feeds partly failed is retried in-process with only the failed
recipients, under the same digest, so that success marks the whole batch done.
Recipients still failing after that are reported, never rolled back: the next
delivery of the event serves only what is missing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import structlog

from pipelines.feed.ports import BatchResult, FeedStore
from transforms.fanout import FanoutBatch, FanoutPlan

log = structlog.get_logger(__name__)


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
        retries: int = 2,
        retry_base_seconds: float = 0.05,
    ) -> None:
        self._store = store
        self._parallelism = parallelism
        self._retries = retries
        self._retry_base = retry_base_seconds

    async def distribute(
        self, plan: FanoutPlan, *, owner: str, careful: bool
    ) -> DistributionReport:
        """Push the plan's post to every recipient; failed recipients are in the report.

        Errors other than per-feed failures (Redis unreachable, timeouts) propagate
        after the in-flight batches are cancelled; what was written stays written.
        """
        report = DistributionReport()
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
        pending: Sequence[uuid.UUID] = batch.recipients
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._retry_base * 2 ** (attempt - 1))
            result = await self._store.push_batch(
                post_id, pending, digest=batch.digest, owner=owner, careful=careful
            )
            report.add(result)
            if not result.failed:
                return
            pending = result.failed
            log.debug(
                "fanout batch partly failed",
                postId=str(post_id),
                digest=batch.digest,
                failed=len(pending),
                attempt=attempt + 1,
            )
        for user_id in pending:
            log.warning("fanout target failed", postId=str(post_id), userId=str(user_id))
        report.failed.extend(pending)


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
