"""Composition root of the notifications pipeline (`socialpipe worker notifications`)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from config.clients import open_any_redis, postgres_probe
from config.settings import Settings
from config.tracing import traced
from contracts.failures import POSTGRES, REDIS
from pipelines.notifications.handler import NotificationsHandler
from pipelines.notifications.postgres import PgNotificationStore
from pipelines.notifications.redis_counters import RedisUnreadCounters
from store.db import create_pool


async def build_notifications_handler(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    pool: Any = None,
    redis: Any = None,
) -> NotificationsHandler:
    """Build the notifications handler, opening PostgreSQL and Redis unless they are given.

    Clients opened here are closed by `stack`; given ones belong to the caller.
    """
    if pool is None:
        pool = await create_pool(settings.database_url, max_size=10)
        stack.push_async_callback(pool.close)
    if redis is None:
        redis = await open_any_redis(stack, settings, max_connections=16)
    dependencies = {POSTGRES: postgres_probe(pool), REDIS: redis.ping}
    return NotificationsHandler(
        traced(PgNotificationStore(pool), "postgresql", "save"),
        traced(RedisUnreadCounters(redis), "redis", "count_once"),
        dependencies=dependencies,
    )
