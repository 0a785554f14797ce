"""Running a reconciler's batches: a keyset producer, N checkers, one rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

from contracts.pacing import Pacer
from reconcile.report import ReconcileReport

MAX_BATCH_SIZE: Final = 5000
MAX_PARALLELISM: Final = 32

Batch = Sequence[uuid.UUID]


def check_limits(batch_size: int, parallelism: int) -> None:
    """Refuse sizes that would hurt production (one sentence each)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(
            f"The batch size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}."
        )
    if not 1 <= parallelism <= MAX_PARALLELISM:
        raise ValueError(
            f"The parallelism must be between 1 and {MAX_PARALLELISM}, got {parallelism}."
        )


async def run_batches(
    pages: AsyncIterator[Batch],
    check: Callable[[Batch], Awaitable[ReconcileReport]],
    report: ReconcileReport,
    *,
    parallelism: int,
    limiter: Pacer,
) -> None:
    """Feed `pages` to `parallelism` checkers (bounded queue), adding their reports up.

    Each checked batch tells `limiter` how long it took: an adaptive pace reads
    the database's contention from it.
    """
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=parallelism)

    async def produce() -> None:
        async for page in pages:
            await limiter.acquire(len(page))
            await queue.put(page)
        for _ in range(parallelism):
            await queue.put(None)

    async def consume() -> None:
        while (page := await queue.get()) is not None:
            started = time.perf_counter()
            report.add(await check(page))
            limiter.observe(len(page), time.perf_counter() - started)

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        for _ in range(parallelism):
            group.create_task(consume())
