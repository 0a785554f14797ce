"""Unread counters in Redis, counted once per event however often it is delivered."""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson

from contracts.failures import REDIS, boundary
from contracts.keys import unread_notifications_key
from pipelines.notifications.plan import Notification

# Remember counted events for longer than a message can live in the queue and its DLQ,
# so a redrive weeks later still cannot count twice.
COUNTED_TTL_SECONDS: Final = 15 * 24 * 3600

# Marker and increment in one atomic step: a crash can only happen before both or
# after both, so a redelivery counts the event exactly when the first delivery did not.
_COUNT_ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local n = redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return n
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""


def counted_key(event_id: uuid.UUID) -> str:
    return f"notif:counted:{event_id}"


def notifications_channel(user_id: uuid.UUID) -> str:
    """Pub/sub channel a client may subscribe to for live notifications."""
    return f"notif:live:{user_id}"


class RedisUnreadCounters:
    """`UnreadCounters` over one Redis client."""

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
        keys = [counted_key(notification.event_id), unread_notifications_key(notification.user_id)]
        args = [COUNTED_TTL_SECONDS, notifications_channel(notification.user_id), message]
        with boundary("Counting an unread notification in Redis", dependency=REDIS):
            return int(await self._count_once(keys=keys, args=args))

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        await self._redis.set(unread_notifications_key(user_id), unread)

    async def unread(self, user_id: uuid.UUID) -> int:
        value = await self._redis.get(unread_notifications_key(user_id))
        return int(value or 0)
