"""The notifications handler the transports drive."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.errors import PermanentError, TransientError
from contracts.events import Envelope, utcnow
from contracts.metrics import END_TO_END_LATENCY, NOTIFICATIONS_CREATED
from contracts.outcomes import ACK, DeadLetter, Outcome, Retry
from pipelines.notifications.plan import plan_notification
from pipelines.notifications.ports import NotificationStore, UnreadCounters

log = structlog.get_logger("notifications")

_TRANSIENT = (
    TransientError,
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TooManyConnectionsError,
)


class NotificationsHandler:
    """ConnectionRequested → addressee, ConnectionAccepted → requester,
    CommentCreated → the post's author (never for one's own comment).

    Rows are idempotent by event id and the unread counter counts each event once,
    so any number of redeliveries leaves the same state.
    """

    name = "notifications"
    max_batch = 10

    def __init__(self, store: NotificationStore, counters: UnreadCounters) -> None:
        self._store = store
        self._counters = counters

    async def wait_ready(self) -> None:
        return None

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        return [await self._handle_one(e) for e in events]

    async def _handle_one(self, envelope: Envelope) -> Outcome:
        try:
            await self._notify(envelope)
        except PermanentError as exc:
            return DeadLetter(exc.error_type, exc.message)
        except _TRANSIENT as exc:
            log.warning(
                "notification deferred",
                correlationId=envelope.correlation_id,
                errorMessage=str(exc),
                eventId=str(envelope.event_id),
            )
            return Retry(type(exc).__name__, str(exc) or type(exc).__name__)
        except asyncpg.PostgresError as exc:
            # Constraint and data errors will fail the same way on every retry.
            return DeadLetter(type(exc).__name__, str(exc))
        return ACK

    async def _notify(self, envelope: Envelope) -> None:
        notification = plan_notification(envelope)
        if notification is None:
            return
        if await self._store.save(notification):
            await self._counters.count_once(notification)
            NOTIFICATIONS_CREATED.labels(notification.kind).inc()
        latency = (utcnow() - envelope.occurred_at).total_seconds()
        END_TO_END_LATENCY.labels("notifications", envelope.event_type).observe(max(latency, 0))
