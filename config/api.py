"""Composition root of `socialpipe api`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
import uvicorn
from argon2 import PasswordHasher
from starlette.applications import Starlette

from api.app import create_app
from api.auth import Passwords, Tokens
from api.ports import PeopleHit, UnreadCounters
from api.services import Services
from api.uow import PgUnitsOfWork
from config.clients import open_any_redis
from config.logging import configure_logging
from config.search import open_search_index
from config.settings import Settings
from config.startup import check_dependencies, listening_socket
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
    if pool is None:
        pool = await create_pool(settings.database_url, max_size=20)
        stack.push_async_callback(pool.close)
    if redis is None:
        redis = await open_any_redis(stack, settings)
    if search is None:
        search = await open_search_index(stack, settings, pool=pool)
    if settings.api_token_secret is None:
        structlog.get_logger("api").warning(
            "API_TOKEN_SECRET is unset: tokens are signed with a per-process key"
        )
    services = Services(
        PgUnitsOfWork(pool),
        redis,
        IndexPeopleSearch(search),
        counters or RedisUnreadCounters(redis),
        Passwords(hasher),
        Tokens(settings.api_token_secret, settings.api_token_ttl_seconds),
    )
    return create_app(services)


class IndexPeopleSearch:
    """`PeopleSearch` over the search pipeline's `SearchIndex`."""

    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    async def search_people(
        self, text: str, skills: Sequence[str], companies: Sequence[str], limit: int
    ) -> list[PeopleHit]:
        query = SearchQuery(text, tuple(skills), tuple(companies), limit)
        return [
            PeopleHit(h.user_id, h.full_name, h.headline, h.visibility)
            for h in await self._index.search(query)
        ]


async def serve_api(settings: Settings, host: str, port: int) -> None:
    """Serve GraphQL at /graphql until SIGTERM/SIGINT."""
    configure_logging("api", settings.log_level)
    await check_dependencies(settings, "api")
    sock = listening_socket("API", host, port)
    async with AsyncExitStack() as stack:
        stack.callback(sock.close)
        app = await build_api(stack, settings)
        # log_config=None: uvicorn's records reach the JSON root handler, not its own.
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        await uvicorn.Server(config).serve(sockets=[sock])
