"""The notifications handler the transports drive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from contracts.events import Envelope, utcnow
from contracts.metrics import END_TO_END_LATENCY, NOTIFICATIONS_CREATED
from contracts.outcomes import ACK, Outcome, Probe
from pipelines.notifications.plan import plan_notification
from pipelines.notifications.ports import NotificationStore, UnreadCounters

log = structlog.get_logger("notifications")


class NotificationsHandler:
    """ConnectionRequested → addressee, ConnectionAccepted → requester,
    CommentCreated → the post's author (never for one's own comment).

    Rows are idempotent by event id and the unread counter counts each event once,
    so any number of redeliveries leaves the same state.
    """

    name = "notifications"
    # One event per call: a failure escapes as an exception and must not take
    # the fate of other events with it.
    max_batch = 1

    def __init__(
        self,
        store: NotificationStore,
        counters: UnreadCounters,
        *,
        dependencies: Mapping[str, Probe] | None = None,
    ) -> None:
        self._store = store
        self._counters = counters
        self.dependencies: Mapping[str, Probe] = dict(dependencies or {})

    async def wait_ready(self) -> None:
        return None

    async def handle(self, events: Sequence[Envelope]) -> Sequence[Outcome]:
        return [await self._handle_one(e) for e in events]

    async def _handle_one(self, envelope: Envelope) -> Outcome:
        # Failures escape: the adapters named them, the runtime classifies them.
        await self._notify(envelope)
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
