"""The feed fan-out handler.

PostCreated: a check against PostgreSQL (the post exists, by that author) →
enrichment (the author's connections) → plan (pure transform) → distribution
(Redis). ConnectionAccepted: drop both users' cached connection lists. Every
other event type is acknowledged and ignored.

Failures escape as exceptions (adapters already named the operation and the
kind); the runtime's classifier turns them into outcomes. This handler returns
outcomes only for its own decisions: a post that does not exist, a fan-out
that left some feeds unwritten.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from contracts.errors import UnknownEntity
from contracts.events import ConnectionAccepted, Envelope, PostCreated
from contracts.metrics import (
    END_TO_END_LATENCY,
    FANOUT_TARGETS_FAILED,
    FANOUT_TARGETS_SKIPPED,
    FANOUT_TARGETS_WRITTEN,
)
from contracts.outcomes import ACK, DeadLetter, Outcome, Probe, Retry
from pipelines.feed.distribution import DistributionReport, Distributor
from pipelines.feed.enrichment import ConnectionLookup, PostConnectionSource
from pipelines.feed.ports import ConnectionSource
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
        posts: ConnectionSource,
        distributor: Distributor,
        batch_size: int,
        marker_ttl: int,
        dependencies: Mapping[str, Probe] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._lookup = lookup
        self._posts = posts
        # One read answers both questions when the lookup reads the same PostgreSQL.
        self._combined: PostConnectionSource | None = None
        if isinstance(posts, PostConnectionSource) and lookup.reads(posts):
            self._combined = posts
        self._distributor = distributor
        self._batch_size = batch_size
        self._careful_after = timedelta(seconds=marker_ttl) - MARKER_SAFETY_MARGIN
        self.dependencies: Mapping[str, Probe] = dict(dependencies or {})
        self._now = now

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        """One outcome per envelope, in order (the runtime sends one at a time)."""
        return [await self._dispatch(event) for event in events]

    async def wait_ready(self) -> None:
        """Blocks while the connection source's breaker is open with no fallback."""
        await self._lookup.wait_ready()

    def _age(self, event: Envelope) -> timedelta:
        occurred = event.occurred_at
        # A producer that omitted the offset still means UTC.
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

    async def _careful(self, event: Envelope) -> bool:
        """Whether feeds may already hold the post, so each push must check first.

        Read from the message (a redelivery, a requeue or a redrive), its age (its
        marker may have expired) and reconcile's mark (feeds rewritten from the
        truth) — not only from the fan-out marker, which a Redis restart can lose.
        """
        if event.redelivered or self._age(event) > self._careful_after:
            return True
        return await self._distributor.careful_until() >= time.time()

    async def _connections(self, post: PostCreated) -> Sequence[uuid.UUID] | None:
        """The author's connections, or None when the post is not the author's."""
        if self._combined is not None:
            return await self._lookup.connections_of_post(
                post.post_id, post.author_id, self._combined
            )
        if not await self._posts.post_exists(post.post_id, post.author_id):
            return None
        return await self._lookup.connections(post.author_id)

    async def _fan_out(self, event: Envelope, post: PostCreated) -> Outcome:
        connections = await self._connections(post)
        if connections is None:
            error = UnknownEntity(
                f"Post {post.post_id} of author {post.author_id} does not exist in PostgreSQL;"
                " nothing was fanned out."
            )
            log.warning("post not found", postId=str(post.post_id), errorMessage=error.message)
            return DeadLetter(error.error_type, error.message)
        plan = plan_fanout(post.post_id, post.author_id, connections, self._batch_size)
        # A fresh owner per attempt: a redelivery is a different owner, which makes
        # the marker switch every later batch of this post to checking mode.
        report = await self._distributor.distribute(
            plan, owner=secrets.token_hex(8), careful=await self._careful(event)
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
