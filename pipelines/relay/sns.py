"""The SNS adapter of `EventPublisher`, its PublishBatch entries and `publish_events`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from contracts.errors import PermanentError, TransientError
from contracts.events import Envelope, decode_body
from contracts.wire import chunked, string_attributes
from pipelines.relay.ports import PublishResult
from store.outbox import OutboxRow

if TYPE_CHECKING:
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sns.type_defs import PublishBatchRequestEntryTypeDef

Entry = tuple[OutboxRow, Envelope]
PUBLISH_BATCH: Final = 10
# Whole-call errors that blame the request's content, not the bus or our credentials.
REQUEST_FAULTS: Final = frozenset(
    {"BatchRequestTooLong", "InvalidParameter", "InvalidParameterValue"}
)


async def find_topic(sns: SNSClient, name: str) -> str | None:
    """The ARN of the topic called `name`, or None when there is none.

    ListTopics, not CreateTopic: the relay only publishes, so it needs no right to
    create (`socialpipe queues create`, the set-up step, makes the topic).
    """
    async for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            arn: str = topic.get("TopicArn", "")
            if arn.rsplit(":", 1)[-1] == name:
                return arn
    return None


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
    caller retries them; entries before the failure stay published, which
    at-least-once consumers tolerate. Tools and tests publish with this; the relay
    uses `SnsPublisher`, which tells refused rows from unsent ones.
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


class SnsPublisher:
    """Publishes rows in PublishBatch calls of 10, the calls of one batch concurrently.

    Failures are told apart per row: an entry SNS rejects as the sender's fault
    (`SenderFault`, e.g. too large) or a body that no longer decodes is *refused*
    (the relay parks it after repeated refusals); a failed call or a server-side
    entry failure leaves its rows *unsent*, to be retried. Nothing else in a batch
    is held back by one bad row.
    """

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    async def publish(self, rows: Sequence[OutboxRow]) -> PublishResult:
        refused: dict[int, str] = {}
        entries: list[Entry] = []
        for row in rows:
            try:
                entries.append((row, decode_body(row.body)))
            except PermanentError as exc:
                refused[row.id] = f"{type(exc).__name__}: {exc}"
        chunks = list(chunked(entries, PUBLISH_BATCH))
        results = await asyncio.gather(*(self._publish_chunk(c, refused) for c in chunks))
        unsent = frozenset().union(*results) if results else frozenset()
        if entries and len(unsent) == len(entries):
            raise TransientError(f"Publishing to the events topic failed for all {len(rows)} rows.")
        return PublishResult(refused, unsent)

    async def _publish_chunk(self, chunk: Sequence[Entry], refused: dict[int, str]) -> set[int]:
        """Publish one chunk; record refusals, return the ids left unsent."""
        try:
            result = await self._sns.publish_batch(
                TopicArn=self._topic_arn,
                PublishBatchRequestEntries=publish_entries([env for _, env in chunk]),
            )
        except ClientError as exc:
            return await self._call_refused(chunk, exc, refused)
        except BotoCoreError:
            return {row.id for row, _ in chunk}
        unsent: set[int] = set()
        for failure in result.get("Failed", []):
            row = chunk[int(failure["Id"])][0]
            if failure.get("SenderFault"):
                refused[row.id] = f"{failure.get('Code', 'Refused')}: {failure.get('Message', '')}"
            else:
                unsent.add(row.id)
        return unsent

    async def _call_refused(
        self, chunk: Sequence[Entry], exc: ClientError, refused: dict[int, str]
    ) -> set[int]:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in REQUEST_FAULTS:
            return {row.id for row, _ in chunk}
        if len(chunk) > 1:
            # One oversized or invalid entry sinks the whole call: find it row by row.
            singles = await asyncio.gather(*(self._publish_chunk([e], refused) for e in chunk))
            return set().union(*singles)
        refused[chunk[0][0].id] = f"{code}: {exc}"
        return set()
