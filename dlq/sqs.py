"""`DeadLetters` over SQS: the `<queue>-dlq` queues that `queues create` set up.

Reading never consumes: messages are received with a short visibility timeout
and released (visibility 0) before the call returns. Attempts come from the
`attempts` attribute the worker wrote, or for a message the queue's redrive
policy moved from that policy's maxReceiveCount, never from the dead letter's
own receive count, which every look raises.

Redrive sends each message back with its body, its original attributes (the
failure description dropped) and `redrivenAt`, and only then deletes it, so an
interruption can duplicate a message but never lose one. Permanent failures
stay unless asked for. SQS's message-move task is used only when it would do
the same: nothing narrows the selection (no filter, maximum or dry run, no
permanent failure left behind) and every message already carries `errorType`,
which tells a worker it is a redelivery as `redrivenAt` would (the task
cannot add an attribute).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from consumers.messages import DEAD_LETTER_KEYS, MAX_ATTRIBUTES, REDRIVE_MARK
from consumers.topology import queue_url
from contracts.events import format_time
from contracts.keys import dlq_name
from contracts.pacing import RateLimiter
from contracts.wire import chunked
from dlq.letters import attempts_of, policy_attempts
from dlq.ports import DeadMessage, Peek, Progress, RedriveOptions, RedriveResult

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
        moved_after = await self._policy_attempts(queue)
        depth = await self.count(queue)
        held, complete = await self._hold(url, limit)
        try:
            return Peek(tuple(_message(m, moved_after) for m in held.values()), depth, complete)
        finally:
            await self._release(url, held.values())

    async def get(self, queue: str, message_id: str) -> DeadMessage | None:
        """By its own id or by `sourceMessageId` (the id in the worker's log line)."""
        url = await queue_url(self._sqs, dlq_name(queue))
        moved_after = await self._policy_attempts(queue)
        held: dict[str, Any] = {}
        try:
            while batch := await self._receive(url, PEEK_VISIBILITY):
                # The whole batch is held first so every message received is released;
                # the newest receipt handle is the one SQS honours.
                held.update((raw["MessageId"], raw) for raw in batch)
                found = (_message(raw, moved_after) for raw in batch)
                if match := next((m for m in found if m.known_as(message_id)), None):
                    return match
            return None
        finally:
            await self._release(url, held.values())

    async def _policy_attempts(self, queue: str) -> str:
        """Attempts to show for messages the source queue's redrive policy moved."""
        url = await queue_url(self._sqs, queue)
        got = await self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = got.get("Attributes", {}).get("RedrivePolicy")
        try:
            count = int(json.loads(policy)["maxReceiveCount"]) if policy else None
        except (ValueError, KeyError, TypeError):
            count = None
        return policy_attempts(count)

    async def _hold(self, url: str, limit: int | None) -> tuple[dict[str, Any], bool]:
        """Receive up to `limit` distinct messages, keeping them invisible; True if all."""
        held: dict[str, Any] = {}
        while limit is None or len(held) < limit:
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
            survey, unmarked = await self._survey(dlq_url, options)
            blocker = _move_task_blocker(survey, unmarked)
            if blocker is None:
                return await self._move_task(dlq_url, source_url, options, survey, progress)
            forced.append(blocker)
        result = await self._fallback(dlq_url, source_url, options, progress)
        if forced and await self.supports_move_task(dlq_url):
            result.notes.append(f"{' and '.join(forced)} forces receive-send-delete.")
        return result

    async def _survey(self, dlq_url: str, options: RedriveOptions) -> tuple[RedriveResult, int]:
        """Every dead letter classified (and released at once), and how many lack errorType."""
        survey = RedriveResult("move-task")
        held, _ = await self._hold(dlq_url, None)
        try:
            messages = [_message(raw, "?") for raw in held.values()]
        finally:
            await self._release(dlq_url, held.values())
        for message in messages:
            survey.consider(message, options)
        return survey, sum("errorType" not in m.attributes for m in messages)

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
        survey: RedriveResult,
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
                # Counted before the task started: messages dead-lettered meanwhile move too.
                result.by_error_type = survey.by_error_type
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
            while room := _room(options, result):
                batch = await self._receive(dlq_url, self._redrive_visibility, room)
                if not batch:
                    break
                wanted = _select(batch, options, held, result)
                if options.dry_run:
                    held.update((m["MessageId"], m) for m in wanted)
                else:
                    await limiter.acquire(len(wanted))
                    result.moved += await self._move_batch(dlq_url, source_url, wanted)
                if progress is not None:
                    progress(result.seen, max(total, result.seen))
        finally:
            # Messages left out, and in a dry run every one, were held invisible so
            # the scan sees each once; they go back now.
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
        redriven_at = format_time(datetime.now(UTC))
        entries: list[Any] = [
            {
                "Id": str(i),
                "MessageBody": raw.get("Body", ""),
                "MessageAttributes": redriven_attributes(
                    raw.get("MessageAttributes", {}), redriven_at
                ),
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
    if options.event_type or options.error_type:
        reasons.append("--filter")
    if options.max_messages is not None:
        reasons.append("--max")
    if options.dry_run:
        reasons.append("--dry-run")
    return reasons


def _move_task_blocker(survey: RedriveResult, unmarked: int) -> str | None:
    """Why the move task would do the wrong thing here, or None when it is fine."""
    if unmarked:
        return "messages without failure attributes (they must be marked redrivenAt)"
    if survey.permanent:
        return "leaving permanent failures behind"
    return None


def _room(options: RedriveOptions, result: RedriveResult) -> int:
    """How many more messages may be received for sending (0: --max is reached)."""
    if options.max_messages is None:
        return RECEIVE_MAX
    return max(0, min(RECEIVE_MAX, options.max_messages - result.matched))


def _select(
    batch: Sequence[Any], options: RedriveOptions, held: dict[str, Any], result: RedriveResult
) -> list[Any]:
    """The messages of `batch` to send; the ones left out join `held` until the end."""
    wanted = []
    for raw in batch:
        if raw["MessageId"] in held:
            # Seen before and come back visible: keep the newest receipt handle.
            held[raw["MessageId"]] = raw
        elif result.consider(_message(raw, "?"), options):
            wanted.append(raw)
        else:
            held[raw["MessageId"]] = raw
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


def redriven_attributes(attributes: Mapping[str, Any], redriven_at: str) -> dict[str, Any]:
    """The original attributes plus `redrivenAt` (a previous mark replaced).

    SQS takes at most 10 attributes: a message put in the DLQ by hand with ten of
    its own loses its last one, never the mark.
    """
    kept = [(k, v) for k, v in original_attributes(attributes).items() if k != REDRIVE_MARK]
    mark = {"DataType": "String", "StringValue": redriven_at}
    return {**dict(kept[: MAX_ATTRIBUTES - 1]), REDRIVE_MARK: mark}


def _strings(attributes: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v.get("StringValue", "")) for k, v in attributes.items() if "StringValue" in v}


def _message(raw: Mapping[str, Any], moved_after: str) -> DeadMessage:
    system = raw.get("Attributes", {})
    sent = system.get("SentTimestamp")
    attributes = _strings(raw.get("MessageAttributes", {}))
    return DeadMessage(
        message_id=raw["MessageId"],
        body=raw.get("Body", ""),
        attributes=attributes,
        attempts=attempts_of(attributes, moved_after=moved_after),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
    )
