"""Redis key formats (docs/architecture.md#redis-keys) and queue/topic naming, in one place."""

from __future__ import annotations

import uuid
from typing import Final

FEED_PREFIX: Final = "feed:"


def feed_key(user_id: uuid.UUID | str) -> str:
    """`feed:{userId}`: newest post id at the head (contract)."""
    return f"{FEED_PREFIX}{user_id}"


def connections_cache_key(user_id: uuid.UUID | str) -> str:
    """Cached accepted-connection ids of a user (packed 16-byte UUIDs): `conn:{<userId>}`.

    The braces are a Redis Cluster hash tag: the `:stale` and `:gen` keys built
    on this one hash to the same slot, so the cache's store-if-unchanged script,
    which touches all three, runs on a cluster too (the same keys on one node).
    """
    return f"conn:{{{user_id}}}"


def fanout_marker_key(post_id: uuid.UUID | str) -> str:
    """Which fan-out batches of a post are done, and which attempt owns the post."""
    return f"fanout:{post_id}"


def careful_until_key() -> str:
    """UNIX seconds until which every fan-out checks each feed before pushing.

    Written by `reconcile feeds` (which rewrites feeds from PostgreSQL), read by
    the feed workers: a post reconcile already wrote must not be pushed twice.
    """
    return "fanout:careful-until"


def unread_notifications_key(user_id: uuid.UUID | str) -> str:
    """A user's unread notifications, an integer: `notif:unread:{<userId>}`.

    The braces are a Redis Cluster hash tag shared with `counted_notification_key`:
    the count-once script touches both, so they must hash to one slot.
    """
    return f"notif:unread:{{{user_id}}}"


def counted_notification_key(user_id: uuid.UUID | str, event_id: uuid.UUID | str) -> str:
    """Set once the event was counted for its recipient: `notif:counted:{<userId>}:<eventId>`.

    Hash-tagged by the recipient, like `unread_notifications_key`, so the
    count-once script's two keys share a cluster slot (and a node).
    """
    return f"notif:counted:{{{user_id}}}:{event_id}"


def notifications_channel(user_id: uuid.UUID | str) -> str:
    """Pub/sub channel of a user's live notifications: `notif:live:<userId>`."""
    return f"notif:live:{user_id}"


def dlq_name(queue: str) -> str:
    """Dead-letter queue of a source queue (contract: `<name>-dlq`)."""
    return f"{queue}-dlq"


def rate_limit_key(scope: str, subject: str) -> str:
    """A rate limit's state (one GCRA timestamp): `ratelimit:<scope>:{<subject>}`.

    `scope` names the limit (`login-address`, `login-account`, `register-address`);
    `subject` is a client address or a digest of an email, never the email itself.
    The braces hash-tag the subject, so on a Redis Cluster every limit of one
    subject lives on one node.
    """
    return f"ratelimit:{scope}:{{{subject}}}"


# The profile cache's keys are spread over this many shards, each with its own
# hash tag: a shard's entries and its access-time index share a cluster slot, so
# one script can store an entry and evict the least recently read in that shard.
PROFILE_CACHE_SHARDS: Final = 64


def profile_cache_shard(user_id: uuid.UUID) -> int:
    """The shard a user's cached profile lives in (uuid4 ids spread evenly)."""
    return user_id.int % PROFILE_CACHE_SHARDS


def profile_cache_key(user_id: uuid.UUID) -> str:
    """A cached profile (JSON, no secrets): `profile:{p<shard>}:<userId>`.

    The braces are a Redis Cluster hash tag shared with the shard's
    `profile_lru_key` and the entry's `:gen` and `:writing` keys, so the cache's
    scripts, which touch them together, run on a cluster too.
    """
    return f"profile:{{p{profile_cache_shard(user_id)}}}:{user_id}"


def profile_lru_key(shard: int) -> str:
    """A sorted set of a shard's cached profiles by last read (ms): `profile:{p<shard>}:lru`."""
    return f"profile:{{p{shard}}}:lru"
