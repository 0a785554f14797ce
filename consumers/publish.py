"""Publishing envelopes to the SNS topic, and raw sends for tools and tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from contracts.errors import TransientError
from contracts.events import Envelope

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sns.type_defs import PublishBatchRequestEntryTypeDef
    from types_aiobotocore_sqs import SQSClient

PUBLISH_BATCH: Final = 10
T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def string_attributes(values: Mapping[str, str]) -> dict[str, Any]:
    """SNS/SQS message attributes of type String (empty values are not allowed)."""
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items() if v}


def publish_entries(envelopes: Sequence[Envelope]) -> list[PublishBatchRequestEntryTypeDef]:
    """PublishBatch entries; the id is the batch position, so failures map back."""
    return [
        {
            "Id": str(i),
            "Message": env.to_json().decode(),
            "MessageAttributes": string_attributes(env.attributes()),
        }
        for i, env in enumerate(envelopes)
    ]


async def publish_events(sns: SNSClient, topic_arn: str, envelopes: Sequence[Envelope]) -> int:
    """Publish envelopes in batches of 10; returns how many were published.

    Raises `TransientError` naming the failed event ids if any entry fails, so the
    caller (e.g. the outbox relay) retries them; entries before the failure stay
    published, which at-least-once consumers tolerate.
    """
    published = 0
    for chunk in chunked(envelopes, PUBLISH_BATCH):
        try:
            result = await sns.publish_batch(
                TopicArn=topic_arn,
                PublishBatchRequestEntries=publish_entries(chunk),
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"Publishing to SNS failed: {exc}.") from exc
        failed = result.get("Failed", [])
        if failed:
            ids = ", ".join(str(chunk[int(f["Id"])].event_id) for f in failed)
            reason = failed[0].get("Message") or failed[0].get("Code", "unknown")
            raise TransientError(f"SNS refused {len(failed)} event(s) ({ids}): {reason}.")
        published += len(chunk)
    return published


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
