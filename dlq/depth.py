"""Every worker refreshes its own DLQ's depth into `socialpipe_dlq_depth` (alert: > 0)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

import structlog

from contracts.metrics import DLQ_DEPTH

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

REFRESH_SECONDS: Final = 30.0

log = structlog.get_logger("dlq.depth")


async def refresh_once(sqs: SQSClient, *, dlq_url: str, dlq: str) -> int:
    """Read ApproximateNumberOfMessages of the DLQ and publish it; returns the value."""
    got = await sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    depth = int(got.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))
    DLQ_DEPTH.labels(dlq).set(depth)
    return depth


async def _refresh_forever(sqs: SQSClient, *, dlq_url: str, dlq: str, every: float) -> None:
    while True:
        try:
            await refresh_once(sqs, dlq_url=dlq_url, dlq=dlq)
        except Exception as exc:  # a failed read keeps the last value; the next one may work
            log.warning("reading the DLQ depth failed", queue=dlq, errorMessage=str(exc))
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def refreshing_dlq_depth(
    sqs: SQSClient, *, dlq_url: str, dlq: str, every: float = REFRESH_SECONDS
) -> AsyncIterator[None]:
    """Keep `socialpipe_dlq_depth{queue=dlq}` fresh while the block runs."""
    task = asyncio.create_task(
        _refresh_forever(sqs, dlq_url=dlq_url, dlq=dlq, every=every), name=f"dlq-depth-{dlq}"
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
