"""`DeadLetters` over SQS: the `<queue>-dlq` queues that `queues create` set up.

Reading never consumes: messages are received with a short visibility timeout
and released (visibility 0) before the call returns. Redrive uses SQS's
message-move task when the endpoint has it and nothing forces the fallback
(a filter, a maximum or a dry run); otherwise each batch is received, sent to
the source queue with its body and original attributes (the failure
description dropped) and only then deleted, so an interruption can duplicate
a message but never lose one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from consumers.messages import DEAD_LETTER_KEYS
from consumers.publish import chunked
from consumers.topology import queue_url
from contracts.keys import dlq_name
from dlq.ports import DeadMessage, Peek, Progress, RedriveOptions, RedriveResult
from reconcile.pacing import RateLimiter

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

RECEIVE_MAX: Final = 10
# Long enough to finish one scan or one batch, short enough that a crashed tool
# hands its messages back within a minute.
PEEK_VISIBILITY: Final = 30
REDRIVE_VISIBILITY: Final = 60
MOVE_POLL_SECONDS: Final = 1.0
_UNSUPPORTED_MARKERS: Final = ("not been implemented", "Internal Server Error", "UnknownOperation")


class SqsDeadLetters:
    """Implements `dlq.ports.DeadLetters` over SQS.

    `probe` is a client without retries, used once to find out whether the
    endpoint has the message-move API (an emulator answers 500 to it, which a
    retrying client would repeat for seconds).
    """

    def __init__(
        self,
        sqs: SQSClient,
        *,
        probe: SQSClient | None = None,
        redrive_visibility: int = REDRIVE_VISIBILITY,
    ) -> None:
        self._sqs = sqs
        self._probe = probe or sqs
        self._redrive_visibility = redrive_visibility
        self._move_supported: bool | None = None

    # -- reading -------------------------------------------------------------------

    async def count(self, queue: str) -> int:
        url = await queue_url(self._sqs, dlq_name(queue))
        got = await self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(got.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))

    async def peek(self, queue: str, *, limit: int) -> Peek:
        url = await queue_url(self._sqs, dlq_name(queue))
        depth = await self.count(queue)
        held, complete = await self._hold(url, limit)
        try:
            return Peek(tuple(_message(m) for m in held.values()), depth, complete)
        finally:
            await self._release(url, held.values())

    async def get(self, queue: str, message_id: str) -> DeadMessage | None:
        url = await queue_url(self._sqs, dlq_name(queue))
        held: dict[str, Any] = {}
        try:
            while batch := await self._receive(url, PEEK_VISIBILITY):
                for raw in batch:
                    held.setdefault(raw["MessageId"], raw)
                if message_id in held:
                    return _message(held[message_id])
            return None
        finally:
            await self._release(url, held.values())

    async def _hold(self, url: str, limit: int) -> tuple[dict[str, Any], bool]:
        """Receive up to `limit` distinct messages, keeping them invisible; True if all."""
        held: dict[str, Any] = {}
        while len(held) < limit:
            batch = await self._receive(url, PEEK_VISIBILITY)
            if not batch:
                return held, True
            for raw in batch:
                # An emulator may hand the same message out twice; keep the first.
                if raw["MessageId"] in held:
                    await self._release(url, [raw])
                else:
                    held[raw["MessageId"]] = raw
        return held, False

    async def _receive(self, url: str, visibility: int, count: int = RECEIVE_MAX) -> list[Any]:
        response = await self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(RECEIVE_MAX, count)),
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    async def _release(self, url: str, messages: Any) -> None:
        for batch in chunked(list(messages), RECEIVE_MAX):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(batch)
            ]
            await self._sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)

    # -- redrive -------------------------------------------------------------------

    async def redrive(
        self, queue: str, options: RedriveOptions, progress: Progress | None = None
    ) -> RedriveResult:
        dlq_url = await queue_url(self._sqs, dlq_name(queue))
        source_url = await queue_url(self._sqs, queue)
        forced = _fallback_reasons(options)
        if not forced and await self.supports_move_task(dlq_url):
            return await self._move_task(dlq_url, source_url, options, progress)
        result = await self._fallback(dlq_url, source_url, options, progress)
        if forced and await self.supports_move_task(dlq_url):
            result.notes.append(f"{' and '.join(forced)} forces receive-send-delete.")
        return result

    async def supports_move_task(self, dlq_url: str) -> bool:
        """Whether the endpoint offers ListMessageMoveTasks/StartMessageMoveTask."""
        if self._move_supported is None:
            arn = await self._arn(dlq_url)
            try:
                await self._probe.list_message_move_tasks(SourceArn=arn, MaxResults=1)
                self._move_supported = True
            except ClientError as exc:
                self._move_supported = not _unsupported(exc)
                if self._move_supported:
                    raise
        return self._move_supported

    async def _arn(self, url: str) -> str:
        got = await self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return got["Attributes"]["QueueArn"]

    async def _move_task(
        self,
        dlq_url: str,
        source_url: str,
        options: RedriveOptions,
        progress: Progress | None,
    ) -> RedriveResult:
        source_arn, dlq_arn = await self._arn(source_url), await self._arn(dlq_url)
        request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": source_arn}
        if options.rate:
            request["MaxNumberOfMessagesPerSecond"] = max(1, min(500, int(options.rate)))
        await self._sqs.start_message_move_task(**request)
        while True:
            tasks = await self._sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)
            task: Mapping[str, Any] = (tasks.get("Results") or [{}])[0]
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
            total = int(task.get("ApproximateNumberOfMessagesToMove", moved) or moved)
            if progress is not None:
                progress(moved, total)
            status = task.get("Status", "COMPLETED")
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                result = RedriveResult("move-task", moved=moved, matched=moved)
                if status != "COMPLETED":
                    reason = task.get("FailureReason", "no reason given")
                    result.notes.append(f"The move task ended {status}: {reason}.")
                return result
            await asyncio.sleep(MOVE_POLL_SECONDS)

    async def _fallback(
        self,
        dlq_url: str,
        source_url: str,
        options: RedriveOptions,
        progress: Progress | None,
    ) -> RedriveResult:
        result = RedriveResult("receive-send-delete")
        limiter = RateLimiter(options.rate)
        total = await self._total(dlq_url, options)
        held: dict[str, Any] = {}
        try:
            while options.max_messages is None or result.matched < options.max_messages:
                room = RECEIVE_MAX
                if options.max_messages is not None:
                    room = min(room, options.max_messages - result.matched)
                batch = await self._receive(dlq_url, self._redrive_visibility, room)
                if not batch:
                    break
                wanted = _select(batch, options, held)
                result.matched += len(wanted)
                if options.dry_run:
                    held.update((m["MessageId"], m) for m in wanted)
                else:
                    await limiter.acquire(len(wanted))
                    result.moved += await self._move_batch(dlq_url, source_url, wanted)
                if progress is not None:
                    progress(result.matched, max(total, result.matched))
        finally:
            result.skipped = len(held) - (result.matched if options.dry_run else 0)
            # Filtered-out messages, and in a dry run every one, were held invisible
            # so the scan sees each once; they go back now.
            await self._release(dlq_url, held.values())
        return result

    async def _total(self, dlq_url: str, options: RedriveOptions) -> int:
        got = await self._sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        depth = int(got.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))
        return depth if options.max_messages is None else min(depth, options.max_messages)

    async def _move_batch(self, dlq_url: str, source_url: str, batch: Sequence[Any]) -> int:
        if not batch:
            return 0
        entries: list[Any] = [
            {
                "Id": str(i),
                "MessageBody": raw.get("Body", ""),
                "MessageAttributes": original_attributes(raw.get("MessageAttributes", {})),
            }
            for i, raw in enumerate(batch)
        ]
        sent = await self._sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
        ok = [batch[int(s["Id"])] for s in sent.get("Successful", [])]
        failed = [batch[int(f["Id"])] for f in sent.get("Failed", [])]
        if ok:
            # Delete only what the source queue accepted: the rest stays dead-lettered.
            receipts: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)
            ]
            await self._sqs.delete_message_batch(QueueUrl=dlq_url, Entries=receipts)
        if failed:
            await self._release(dlq_url, failed)
        return len(ok)

    async def purge(self, queue: str) -> int:
        url = await queue_url(self._sqs, dlq_name(queue))
        before = await self.count(queue)
        await self._sqs.purge_queue(QueueUrl=url)
        return before


def _fallback_reasons(options: RedriveOptions) -> list[str]:
    reasons = []
    if options.event_type:
        reasons.append("--filter")
    if options.max_messages is not None:
        reasons.append("--max")
    if options.dry_run:
        reasons.append("--dry-run")
    return reasons


def _select(batch: Sequence[Any], options: RedriveOptions, held: dict[str, Any]) -> list[Any]:
    """The messages of `batch` to move; filtered-out ones join `held` until the end."""
    wanted = []
    for raw in batch:
        if raw["MessageId"] in held:
            # Seen before and come back visible: keep the newest receipt handle.
            held[raw["MessageId"]] = raw
            continue
        attrs = _strings(raw.get("MessageAttributes", {}))
        if options.event_type and attrs.get("eventType") != options.event_type:
            held[raw["MessageId"]] = raw
        else:
            wanted.append(raw)
    return wanted


def _unsupported(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status in (404, 501) or any(marker in text for marker in _UNSUPPORTED_MARKERS)


def original_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The message attributes the producer set, without the failure description."""
    return {
        k: {f: v for f, v in a.items() if f in ("DataType", "StringValue", "BinaryValue")}
        for k, a in attributes.items()
        if k not in DEAD_LETTER_KEYS
    }


def _strings(attributes: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v.get("StringValue", "")) for k, v in attributes.items() if "StringValue" in v}


def _message(raw: Mapping[str, Any]) -> DeadMessage:
    system = raw.get("Attributes", {})
    sent = system.get("SentTimestamp")
    return DeadMessage(
        message_id=raw["MessageId"],
        body=raw.get("Body", ""),
        attributes=_strings(raw.get("MessageAttributes", {})),
        receive_count=int(system.get("ApproximateReceiveCount", "1")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
    )
