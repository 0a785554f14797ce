"""Unread counters in Redis, counted once per event however often it is delivered."""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson

from contracts.failures import REDIS, boundary
from contracts.keys import (
    counted_notification_key,
    notifications_channel,
    unread_notifications_key,
)
from pipelines.notifications.plan import Notification

# Remember counted events for longer than a message can live in the queue and its DLQ,
# so a redrive weeks later still cannot count twice.
COUNTED_TTL_SECONDS: Final = 15 * 24 * 3600

# Marker and increment in one atomic step: a crash can only happen before both or
# after both, so a redelivery counts the event exactly when the first delivery did not.
# Both keys carry the recipient's hash tag, so on a Redis Cluster they share a slot and
# the script runs on that slot's node; its PUBLISH reaches subscribers on every node.
_COUNT_ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local n = redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return n
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""


class RedisUnreadCounters:
    """`UnreadCounters` over one Redis node or a Redis Cluster (the same keys)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._count_once = redis.register_script(_COUNT_ONCE)

    async def count_once(self, notification: Notification) -> int:
        message = orjson.dumps(
            {
                "eventId": str(notification.event_id),
                "kind": notification.kind,
                "actorId": str(notification.actor_id),
                "subjectId": str(notification.subject_id),
            }
        )
        keys = [
            counted_notification_key(notification.user_id, notification.event_id),
            unread_notifications_key(notification.user_id),
        ]
        args = [COUNTED_TTL_SECONDS, notifications_channel(notification.user_id), message]
        with boundary("Counting an unread notification in Redis", dependency=REDIS):
            return int(await self._count_once(keys=keys, args=args))

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        await self._redis.set(unread_notifications_key(user_id), unread)

    async def unread(self, user_id: uuid.UUID) -> int:
        value = await self._redis.get(unread_notifications_key(user_id))
        return int(value or 0)
