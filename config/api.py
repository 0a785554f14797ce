"""Composition root of `socialpipe api`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
import uvicorn
from argon2 import PasswordHasher
from starlette.applications import Starlette

from api.app import create_app
from api.auth import Passwords, Tokens
from api.limits import ApiLimits, Busy
from api.ports import PeopleHit, ProfileCache, UnreadCounters
from api.profile_cache import RedisProfileCache
from api.ratelimit import AbuseLimits, Rate, RedisRateLimiter, SignInGuard
from api.services import Services
from api.uow import PgUnitsOfWork
from config.clients import open_any_redis, postgres_probe
from config.health import serving
from config.logging import configure_logging
from config.search import open_search_index
from config.settings import Settings
from config.startup import check_dependencies, listening_socket
from config.tracing import start_tracing
from contracts.api_messages import SEARCH_TOO_SLOW
from contracts.failures import POSTGRES, REDIS
from pipelines.notifications.redis_counters import RedisUnreadCounters
from pipelines.search.ports import SearchIndex, SearchQuery
from store.db import create_pool


async def build_api(
    stack: AsyncExitStack,
    settings: Settings,
    *,
    pool: Any = None,
    redis: Any = None,
    search: SearchIndex | None = None,
    hasher: PasswordHasher | None = None,
    counters: UnreadCounters | None = None,
) -> Starlette:
    """Build the ASGI app with its pool, Redis, search index and counters unless given."""
    limits = api_limits(settings)
    # Room above the resolvers allowed at once, so the pools never run dry.
    connections = limits.max_concurrent_resolvers + 4
    if pool is None:
        pool = await create_pool(settings.database_url, max_size=max(20, connections))
        stack.push_async_callback(pool.close)
    if redis is None:
        redis = await open_any_redis(stack, settings, max_connections=max(32, connections))
    if search is None:
        search = await open_search_index(stack, settings, pool=pool)
    if settings.api_token_secret is None:
        structlog.get_logger("api").warning(
            "API_TOKEN_SECRET is unset: tokens are signed with a per-process key"
        )
    services = Services(
        PgUnitsOfWork(pool),
        redis,
        IndexPeopleSearch(search, limits.search_timeout_seconds, limits.concurrent_searches),
        counters or RedisUnreadCounters(redis),
        Passwords(hasher, concurrency=settings.api_password_checks_at_once or None),
        Tokens(settings.api_token_secret, settings.api_token_ttl_seconds),
        guard=SignInGuard(RedisRateLimiter(redis), sign_in_limits(settings)),
        feed_max_length=settings.feed_max_length,
        profiles=profile_cache(settings, redis),
    )
    probes = {POSTGRES: postgres_probe(pool), REDIS: redis.ping}
    return create_app(services, limits, probes)


def profile_cache(settings: Settings, redis: Any) -> ProfileCache | None:
    """The profile cache in the API's Redis, or none when PROFILE_CACHE_MAX_ENTRIES is 0."""
    if settings.profile_cache_max_entries == 0:
        return None
    return RedisProfileCache(
        redis,
        ttl_seconds=settings.profile_cache_ttl_seconds,
        max_entries=settings.profile_cache_max_entries,
    )


def sign_in_limits(settings: Settings) -> AbuseLimits:
    """The login and registration limits, over the periods docs/api-abuse.md gives."""
    return AbuseLimits(
        login_per_address=Rate(settings.api_logins_per_address, 300),
        login_per_account=Rate(settings.api_login_failures_per_account, 900),
        register_per_address=Rate(settings.api_registrations_per_address, 3600),
    )


def api_limits(settings: Settings) -> ApiLimits:
    """The API's limits: the settings an operator may change, defaults for the rest."""
    return ApiLimits(
        max_body_bytes=settings.api_max_body_bytes,
        max_concurrent_resolvers=settings.api_max_concurrent_resolvers,
        search_timeout_seconds=settings.api_search_timeout_seconds,
        introspection=settings.api_introspection,
    )


class IndexPeopleSearch:
    """`PeopleSearch` over the search pipeline's `SearchIndex`, with a time limit.

    Searches are the API's heaviest statements (full-text and trigram matching
    over every document), so only a few run at once in the process, whoever
    asks: one client's aliases queue behind each other instead of taking the
    database's cores from everyone else. A search over its time, waiting
    included, is cancelled, which for PostgreSQL cancels the statement on the
    server too (asyncpg sends a cancel request), and answers 503: the input was
    within its limits, the server was too slow for it.
    """

    def __init__(self, index: SearchIndex, timeout: float, at_once: int) -> None:
        self._index = index
        self._timeout = timeout
        self._slots = asyncio.Semaphore(at_once)

    async def search_people(
        self, text: str, skills: Sequence[str], companies: Sequence[str], limit: int
    ) -> list[PeopleHit]:
        query = SearchQuery(text, tuple(skills), tuple(companies), limit)
        try:
            async with asyncio.timeout(self._timeout), self._slots:
                found = await self._index.search(query)
        except TimeoutError:
            raise Busy(SEARCH_TOO_SLOW) from None
        return [PeopleHit(h.user_id, h.full_name, h.headline, h.visibility) for h in found]


async def serve_api(settings: Settings, host: str, port: int) -> None:
    """Serve GraphQL at /graphql until SIGTERM/SIGINT; metrics on METRICS_PORT only."""
    configure_logging("api", settings.log_level)
    start_tracing(settings, "api")
    await check_dependencies(settings, "api")
    sock = listening_socket("API", host, port)
    async with AsyncExitStack() as stack:
        stack.callback(sock.close)
        await stack.enter_async_context(
            serving(settings.metrics_port, host=settings.metrics_host, commit=settings.build_commit)
        )
        app = await build_api(stack, settings)
        # log_config=None: uvicorn's records reach the JSON root handler, not its own.
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        await uvicorn.Server(config).serve(sockets=[sock])
