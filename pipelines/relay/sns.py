"""The SNS adapter of `EventPublisher`: PublishBatch through `consumers.publish`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from consumers.publish import PUBLISH_BATCH, chunked, publish_events
from contracts.errors import PermanentError, TransientError
from contracts.events import decode_body
from store.outbox import OutboxRow

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient


class SnsPublisher:
    """Publishes rows in PublishBatch calls of 10, the calls of one batch concurrently.

    A refused call fails only its own ten rows; the others are still marked published.
    """

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    async def publish(self, rows: Sequence[OutboxRow]) -> set[int]:
        chunks = list(chunked(rows, PUBLISH_BATCH))
        results = await asyncio.gather(
            *(self._publish_chunk(c) for c in chunks), return_exceptions=True
        )
        failed: set[int] = set()
        for chunk, result in zip(chunks, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, TransientError | PermanentError):
                    raise result
                failed.update(r.id for r in chunk)
        if failed and len(failed) == len(rows):
            raise TransientError(f"Publishing to the events topic failed for all {len(rows)} rows.")
        return failed

    async def _publish_chunk(self, rows: Sequence[OutboxRow]) -> None:
        envelopes = [decode_body(r.body) for r in rows]
        await publish_events(self._sns, self._topic_arn, envelopes)
