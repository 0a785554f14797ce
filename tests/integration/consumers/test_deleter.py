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
from tests.integration.consumers.helpers import depth


async def test_acks_taken_just_before_close_are_still_deleted(
    sqs: Any, sns: Any, settings: Settings
) -> None:
    # GIVEN three received messages and a running deleter
    topo = await ensure_topology(sqs, sns, settings)
    url = topo.queue_url(settings.feed_queue)
    for _ in range(3):
        await send_raw(sqs, url, post_created().to_json())
    got = await sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )
    received = [ReceivedMessage.from_sqs(m) for m in got["Messages"]]
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
