"""Batched deletes against the moto server."""

from __future__ import annotations

import asyncio
from typing import Any

from config.settings import Settings
from consumers.deleter import BatchDeleter
from consumers.messages import ReceivedMessage
from consumers.publish import send_raw
from consumers.topology import ensure_topology
from tests.factories import post_created
from tests.integration.consumers.helpers import depth, wait_until


async def _received(sqs: Any, sns: Any, settings: Settings, count: int) -> tuple[str, list[Any]]:
    """`count` messages sent to the feed queue and received (in flight); the queue's URL."""
    topo = await ensure_topology(sqs, sns, settings)
    url = topo.queue_url(settings.feed_queue)
    for _ in range(count):
        await send_raw(sqs, url, post_created().to_json())
    received: list[ReceivedMessage] = []
    while len(received) < count:
        got = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        )
        received += [ReceivedMessage.from_sqs(m) for m in got.get("Messages", [])]
    return url, received


async def test_acks_taken_just_before_close_are_still_deleted(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN three received messages and a running deleter
    url, received = await _received(sqs, sns, settings, 3)
    deleter = BatchDeleter(sqs, queue_url=url, queue_name=settings.feed_queue)
    deleter.start()

    # WHEN acks arrive and the deleter closes while it is still collecting its batch
    for message in received:
        deleter.add(message)
    for _ in range(5):  # let the loop take them; it then waits ~50 ms for more
        await asyncio.sleep(0)
    await deleter.close()

    # THEN every acked message is gone from the queue (visible or in flight)
    assert len(received) == 3
    assert await depth(sqs, url) == 0


class _HeldDeletes:
    """The real client, with DeleteMessageBatch held until released; counts calls in flight."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    async def delete_message_batch(self, **kwargs: Any) -> Any:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
            return await self._sqs.delete_message_batch(**kwargs)
        finally:
            self.in_flight -= 1


async def test_slow_deletes_do_not_queue_behind_each_other(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN 30 received messages and delete calls that take long to answer
    url, received = await _received(sqs, sns, settings, 30)
    held = _HeldDeletes(sqs)
    deleter = BatchDeleter(held, queue_url=url, queue_name=settings.feed_queue)  # type: ignore[arg-type]
    deleter.start()
    # WHEN 30 acks arrive while the first delete call has not answered
    for message in received:
        deleter.add(message)
    # THEN three batches are sent at once, and all are deleted once answered
    await wait_until(lambda: held.in_flight == 3, within=5)
    assert not deleter.idle
    held.release.set()
    await deleter.close()
    assert deleter.idle
    assert await depth(sqs, url) == 0
