"""`DeadLetters` over Kafka: the `<queue>-dlq` topics the Kafka workers write.

A log cannot delete single records, so the live dead letters of a queue are
those at or after an operator cursor: the committed offset of the consumer
group `<queue>-dlq-operator` (nothing ever joins it; the tools commit to it
directly). Reading never moves the cursor. `purge` moves it to the end.
`redrive` walks from the cursor to the end offset seen at its start: a
matching record is re-published to the pipeline's retry topic (due at once,
first attempt, failure headers dropped, marked `redrivenAt`), so only that
pipeline's group handles it again; a record the filters or `--max` leave out,
and a permanent failure unless `--include-permanent`, is appended to the
dead-letter topic again so it stays live. The cursor is committed after each
record's send, so an interruption can duplicate one record but never lose it.
Message ids are `partition:offset`; `show` also finds a record by the
`sourceMessageId` header, the record id the worker logged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from consumers.kafka.records import FAILURE_KEYS, RETRY_KEYS, header_map, to_headers
from consumers.kafka.topics import dlq_topic, retry_topic
from consumers.messages import REDRIVE_MARK
from contracts.events import format_time
from contracts.pacing import RateLimiter
from dlq.letters import attempts_of
from dlq.ports import DeadLettersMissing, DeadMessage, Peek, Progress, RedriveOptions, RedriveResult

FETCH_TIMEOUT_MS: Final = 1000
# Fetches that may come back empty before a scan gives up on a partition's remaining range.
EMPTY_FETCHES: Final = 5
END_PROBES: Final = 10
END_PROBE_TIMEOUT_MS: Final = 200
DROPPED_ON_REDRIVE: Final = frozenset(
    {*FAILURE_KEYS, *RETRY_KEYS, "lastErrorType", "sourceOffset", REDRIVE_MARK}
)
# Nothing moves a Kafka record to a dead-letter topic but a worker (which writes
# `attempts`) or a person, so a record without failure headers has no count to show.
UNCOUNTED: Final = "?"


def cursor_group(queue: str) -> str:
    return f"{dlq_topic(queue)}-operator"


class KafkaDeadLetters:
    """Implements `dlq.ports.DeadLetters` over Kafka dead-letter topics."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    # -- reading -------------------------------------------------------------------

    async def count(self, queue: str) -> int:
        async with self._reader(queue) as reader:
            return sum(end - start for start, end in (await _bounds(reader)).values())

    async def peek(self, queue: str, *, limit: int) -> Peek:
        async with self._reader(queue) as reader:
            bounds = await _bounds(reader)
            depth = sum(end - start for start, end in bounds.values())
            seen: list[DeadMessage] = []
            async for tp, message in _scan(reader, bounds):
                if len(seen) >= limit:
                    break
                seen.append(_dead(tp, message))
        return Peek(tuple(seen), depth, complete=len(seen) >= depth)

    async def get(self, queue: str, message_id: str) -> DeadMessage | None:
        """By `partition:offset`, or by the source record id the worker logged."""
        try:
            partition, offset = (int(p) for p in message_id.split(":", 1))
        except ValueError:
            return await self._find_by_source(queue, message_id)
        async with self._reader(queue) as reader:
            bounds = await _bounds(reader)
            tp = TopicPartition(dlq_topic(queue), partition)
            start, end = bounds.get(tp, (0, 0))
            if not start <= offset < end:
                return None
            async for found_tp, message in _scan(reader, {tp: (offset, offset + 1)}):
                return _dead(found_tp, message)
        return None

    async def _find_by_source(self, queue: str, source_id: str) -> DeadMessage | None:
        async with self._reader(queue) as reader:
            async for tp, message in _scan(reader, await _bounds(reader)):
                dead = _dead(tp, message)
                # `sourceOffset` named the source record before `sourceMessageId` did.
                if dead.known_as(source_id) or dead.attributes.get("sourceOffset") == source_id:
                    return dead
        return None

    # -- changing ------------------------------------------------------------------

    async def purge(self, queue: str) -> int:
        async with self._reader(queue) as reader:
            bounds = await _bounds(reader)
            await reader.commit({tp: OffsetAndMetadata(end, "") for tp, (_, end) in bounds.items()})
        return sum(end - start for start, end in bounds.values())

    async def redrive(
        self, queue: str, options: RedriveOptions, progress: Progress | None = None
    ) -> RedriveResult:
        result = RedriveResult("append-to-retry-topic")
        limiter = RateLimiter(options.rate)
        producer = await self._open_producer()
        async with self._reader(queue) as reader:
            bounds = await _bounds(reader)
            total = sum(end - start for start, end in bounds.values())
            async for tp, message in _scan(reader, bounds):
                await self._redrive_one(producer, queue, message, options, result, limiter)
                if not options.dry_run:
                    await reader.commit({tp: OffsetAndMetadata(message.offset + 1, "")})
                if progress is not None:
                    progress(result.seen, total)
        left = result.skipped + result.permanent
        if left and not options.dry_run:
            result.notes.append(f"{left} dead letters were left out and re-appended to stay live.")
        return result

    async def _redrive_one(
        self,
        producer: AIOKafkaProducer,
        queue: str,
        message: Any,
        options: RedriveOptions,
        result: RedriveResult,
        limiter: RateLimiter,
    ) -> None:
        headers = header_map(message.headers)
        dead = DeadMessage("", (message.value or b"").decode(errors="replace"), headers, "", None)
        room = options.max_messages is None or result.matched < options.max_messages
        if not room:
            result.skipped += 1
        elif result.consider(dead, options):
            if not options.dry_run:
                await limiter.acquire()
                await _send(producer, retry_topic(queue), message, _redriven(headers))
                result.moved += 1
            return
        if not options.dry_run:
            await _send(producer, dlq_topic(queue), message, to_headers(headers))

    # -- plumbing ------------------------------------------------------------------

    def _reader(self, queue: str) -> _Reader:
        return _Reader(self._bootstrap, queue)

    async def _open_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
            await producer.start()
            self._producer = producer
        return self._producer


class _Reader:
    """A consumer assigned every partition of a dead-letter topic, in the cursor group."""

    def __init__(self, bootstrap: str, queue: str) -> None:
        self.topic = dlq_topic(queue)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=cursor_group(queue),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = self.consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self.consumer.stop()
            raise DeadLettersMissing(
                f"Dead-letter topic {self.topic!r} does not exist; run `socialpipe queues create`."
            )
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        return self.consumer

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()


async def _bounds(consumer: AIOKafkaConsumer) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition: (cursor, end offset)."""
    tps = sorted(consumer.assignment())
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        committed = await consumer.committed(tp)
        start = max(starts[tp], committed or 0)
        end = await _log_end(consumer, tp, ends[tp])
        bounds[tp] = (min(start, end), end)
    return bounds


async def _log_end(consumer: AIOKafkaConsumer, tp: TopicPartition, reported: int) -> int:
    """The offset after the partition's last record.

    A broker may report a log end one short of a record it has just acknowledged
    (tansu does, right after a write; the record is fetchable all the same), so
    read past the reported end until a fetch comes back empty. Bounded: dead
    letters arrive rarely, and a snapshot only needs what was there when it began.
    """
    end = reported
    for _ in range(END_PROBES):
        consumer.seek(tp, end)
        batch = await consumer.getmany(tp, timeout_ms=END_PROBE_TIMEOUT_MS, max_records=100)
        records = batch.get(tp) or []
        if not records:
            break
        end = records[-1].offset + 1
    return end


async def _scan(
    consumer: AIOKafkaConsumer, bounds: dict[TopicPartition, tuple[int, int]]
) -> AsyncIterator[tuple[TopicPartition, Any]]:
    """Records in [start, end) of each partition, partition by partition, in offset order."""
    for tp, (start, end) in bounds.items():
        if start >= end:
            continue
        consumer.seek(tp, start)
        position, empty = start, 0
        while position < end and empty < EMPTY_FETCHES:
            batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=100)
            empty = 0 if batch.get(tp) else empty + 1
            for message in batch.get(tp, []):
                if message.offset >= end:
                    return
                position = message.offset + 1
                yield tp, message


def _dead(tp: TopicPartition, message: Any) -> DeadMessage:
    headers = header_map(message.headers)
    sent = datetime.fromtimestamp(message.timestamp / 1000, UTC) if message.timestamp else None
    return DeadMessage(
        message_id=f"{tp.partition}:{message.offset}",
        body=(message.value or b"").decode(errors="replace"),
        attributes=headers,
        attempts=attempts_of(headers, moved_after=UNCOUNTED),
        sent_at=sent,
    )


def _redriven(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    """Envelope headers and the redrive mark: first attempt, due at once."""
    kept = {k: v for k, v in headers.items() if k not in DROPPED_ON_REDRIVE}
    return to_headers({**kept, REDRIVE_MARK: format_time(datetime.now(UTC))})


async def _send(
    producer: AIOKafkaProducer, topic: str, message: Any, headers: list[tuple[str, bytes]]
) -> None:
    await producer.send_and_wait(topic, message.value, key=message.key, headers=headers)
