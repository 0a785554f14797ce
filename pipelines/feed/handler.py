"""The feed fan-out handler (DESIGN §5, seed PST-002).

PostCreated: enrichment (the author's connections) → plan (pure transform) →
distribution (Redis). ConnectionAccepted: drop both users' cached connection
lists. Every other event type is acknowledged and ignored.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.errors import PermanentError, TransientError
from contracts.events import ConnectionAccepted, Envelope, PostCreated
from contracts.metrics import (
    END_TO_END_LATENCY,
    FANOUT_TARGETS_FAILED,
    FANOUT_TARGETS_SKIPPED,
    FANOUT_TARGETS_WRITTEN,
)
from contracts.outcomes import ACK, DeadLetter, Outcome, Retry
from pipelines.feed.distribution import DistributionReport, Distributor
from pipelines.feed.enrichment import ConnectionLookup
from transforms.fanout import plan_fanout

log = structlog.get_logger(__name__)

# The fan-out marker may have expired for events older than its TTL minus this margin.
MARKER_SAFETY_MARGIN = timedelta(hours=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FeedHandler:
    """Implements `contracts.outcomes.EventHandler` for the feed-fanout queue."""

    name = "feed"
    max_batch = 1

    def __init__(
        self,
        *,
        lookup: ConnectionLookup,
        distributor: Distributor,
        batch_size: int,
        marker_ttl: int,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._lookup = lookup
        self._distributor = distributor
        self._batch_size = batch_size
        self._careful_after = timedelta(seconds=marker_ttl) - MARKER_SAFETY_MARGIN
        self._now = now

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        """One outcome per envelope, in order; never raises for a bad message."""
        return [await self._handle_one(event) for event in events]

    async def wait_ready(self) -> None:
        """Blocks while the connection source's breaker is open with no fallback."""
        await self._lookup.wait_ready()

    async def _handle_one(self, event: Envelope) -> Outcome:
        with structlog.contextvars.bound_contextvars(
            correlationId=event.correlation_id or str(event.event_id)
        ):
            try:
                return await self._dispatch(event)
            except PermanentError as exc:
                log.warning("feed event rejected", errorMessage=exc.message)
                return DeadLetter(exc.error_type, exc.message)
            except TransientError as exc:
                log.warning("feed event deferred", errorMessage=exc.message)
                return Retry(exc.error_type, exc.message)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("feed store unreachable", errorMessage=str(exc))
                return Retry("TransientError", f"Redis is unreachable: {exc}.")
            except Exception as exc:
                # Unknown failures are retried: the queue's receive limit dead-letters
                # them if they persist, with the stack trace logged here.
                log.exception("feed event failed", eventPayload=event.to_json().decode())
                return Retry(type(exc).__name__, str(exc) or type(exc).__name__)

    def _age(self, event: Envelope) -> timedelta:
        occurred = event.occurred_at
        # A producer that omitted the offset still means UTC (DESIGN §3.3).
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        return self._now() - occurred

    async def _dispatch(self, event: Envelope) -> Outcome:
        payload = event.payload
        if isinstance(payload, PostCreated):
            return await self._fan_out(event, payload)
        if isinstance(payload, ConnectionAccepted):
            await self._lookup.invalidate(payload.requester_id, payload.addressee_id)
            return ACK
        log.debug("feed ignores event type", eventType=event.event_type)
        return ACK

    async def _fan_out(self, event: Envelope, post: PostCreated) -> Outcome:
        connections = await self._lookup.connections(post.author_id)
        plan = plan_fanout(post.post_id, post.author_id, connections, self._batch_size)
        careful = self._age(event) > self._careful_after
        # A fresh owner per attempt: a redelivery is a different owner, which makes
        # the marker switch every later batch of this post to checking mode.
        report = await self._distributor.distribute(
            plan, owner=secrets.token_hex(8), careful=careful
        )
        _count(report)
        if report.failed:
            return Retry(
                "FanoutIncomplete",
                f"{len(report.failed)} of {plan.recipient_count} feeds of post"
                f" {post.post_id} could not be written: {_sample(report.failed)}.",
            )
        latency = self._age(event).total_seconds()
        END_TO_END_LATENCY.labels(pipeline="feed", event_type=event.event_type).observe(latency)
        log.debug(
            "post fanned out",
            postId=str(post.post_id),
            recipients=plan.recipient_count,
            written=report.written,
            skipped=report.skipped,
        )
        return ACK


def _count(report: DistributionReport) -> None:
    FANOUT_TARGETS_WRITTEN.inc(report.written)
    FANOUT_TARGETS_SKIPPED.inc(report.skipped)
    FANOUT_TARGETS_FAILED.inc(len(report.failed))


def _sample(ids: Sequence[uuid.UUID], limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
