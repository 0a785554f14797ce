"""Raw sends to a queue, for tools and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contracts.wire import string_attributes

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


async def send_raw(
    sqs: SQSClient,
    queue_url: str,
    body: str | bytes,
    attributes: Mapping[str, str] | None = None,
) -> str:
    """Send one body as-is to a queue; returns the message id."""
    text = body.decode() if isinstance(body, bytes) else body
    result = await sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=text,
        MessageAttributes=string_attributes(attributes or {}),
    )
    return result["MessageId"]
