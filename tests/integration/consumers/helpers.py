"""Small helpers for driving the consumer against moto."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from config.worker import consumer_options
from consumers.runtime import SqsConsumer
from consumers.topology import Topology
from tests.fakes import ScriptedHandler


def make_consumer(
    sqs: Any,
    settings: Settings,
    topo: Topology,
    handler: ScriptedHandler,
    *,
    queue: str = "feed-fanout",
    concurrency: int = 4,
) -> SqsConsumer:
    return SqsConsumer(
        sqs,
        queue_name=queue,
        queue_url=topo.queue_url(queue),
        dlq_url=topo.dlq_url(queue),
        handler=handler,
        options=consumer_options(settings),
        concurrency=concurrency,
    )


async def wait_until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


async def drain(sqs: Any, url: str, *, visibility: int = 30) -> list[dict[str, Any]]:
    """Receive everything currently visible (keeps it invisible for `visibility` s)."""
    got: list[dict[str, Any]] = []
    while True:
        resp = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        msgs = resp.get("Messages", [])
        if not msgs:
            return got
        got.extend(msgs)


def attrs(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


async def depth(sqs: Any, url: str) -> int:
    got = await sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in got["Attributes"].values())


async def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of a GET on loopback; status 0 when nothing answers."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0, ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return (int(head.split()[1]) if head else 0), body
