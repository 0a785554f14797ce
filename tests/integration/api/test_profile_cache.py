"""The API's profile cache against real Redis (one node and a cluster) and PostgreSQL.

The services are built over the test database and the Redis the test runs on;
each test registers its users through them, so the profiles are real rows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher
from prometheus_client import REGISTRY

from api.auth import Passwords, Tokens
from api.profile_cache import (
    CALL_TIMEOUT_SECONDS,
    ProfileChangesPaused,
    RedisProfileCache,
    decode_profile,
)
from api.ratelimit import SignInGuard
from api.services import Services
from api.uow import PgUnitOfWork, PgUnitsOfWork, PgUsers, UnitOfWork, UnitsOfWork
from config.clients import no_client_retries
from config.feed import FeedRedis
from contracts.keys import PROFILE_CACHE_SHARDS, profile_cache_key, profile_lru_key
from tests.api_fakes import PROFILE_CHANGES, FakeRateLimiter, FakeUnreadCounters, change_profile
from transforms.entities import Profile

CORRELATION = "corr-cache"
PASSWORD = "Correct-horse-1"
BuildServices = Callable[..., Services]


@pytest.fixture
def build_services(db: asyncpg.Pool) -> BuildServices:
    """Services over the test database and a given Redis, its cache `RedisProfileCache`."""

    def build(redis: Any, *, units: UnitsOfWork | None = None, **cache: Any) -> Services:
        options = {"ttl_seconds": 300, "max_entries": 10_000} | cache
        return Services(
            units or PgUnitsOfWork(db),
            redis,
            None,
            FakeUnreadCounters(),
            Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)),
            Tokens("test-secret-" + "x" * 40, 3600),
            guard=SignInGuard(FakeRateLimiter()),
            profiles=RedisProfileCache(redis, **options),
        )

    return build


async def register(services: Services, name: str = "Ada Lovelace") -> uuid.UUID:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    _, user_id = await services.register(email, PASSWORD, date(1990, 1, 1), name, CORRELATION)
    return user_id


async def cached(redis: Any, user_id: uuid.UUID) -> Profile | None:
    raw = await redis.get(profile_cache_key(user_id))
    return None if raw is None else decode_profile(raw)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- hit, miss, invalidation -----------------------------------------------------------


async def test_a_second_read_is_served_from_the_cache(
    feed_redis: FeedRedis, build_services: BuildServices, db: asyncpg.Pool
) -> None:
    # GIVEN a user whose headline is set
    services = build_services(feed_redis)
    me = await register(services)
    await services.update_profile(me, {"headline": "Engineer"}, CORRELATION)
    await feed_redis.delete(profile_cache_key(me))
    hits, misses = (
        sample("socialpipe_profile_cache_hits_total"),
        sample("socialpipe_profile_cache_misses_total"),
    )
    # WHEN it is read, PostgreSQL is changed behind the API's back, and it is read again
    first = await services.profile(None, me)
    await db.execute("UPDATE user_profiles SET headline = 'Behind' WHERE user_id = $1", me)
    second = await services.profile(None, me)
    # THEN the first read missed and cached it, the second was served from the cache
    assert first.headline == second.headline == "Engineer"
    assert sample("socialpipe_profile_cache_misses_total") == misses + 1
    assert sample("socialpipe_profile_cache_hits_total") == hits + 1
    entry = await cached(feed_redis, me)
    assert entry is not None and entry.headline == "Engineer"
    assert 0 < await feed_redis.ttl(profile_cache_key(me)) <= 300


async def test_the_entry_holds_no_secrets(
    feed_redis: FeedRedis, build_services: BuildServices
) -> None:
    # GIVEN a user's cached profile
    services = build_services(feed_redis)
    me = await register(services)
    await services.profile(None, me)
    # THEN the entry holds neither the email nor the password hash
    raw = await feed_redis.get(profile_cache_key(me))
    assert raw is not None
    assert b"@example.com" not in raw and b"argon2" not in raw and PASSWORD.encode() not in raw


@pytest.mark.parametrize("kind", PROFILE_CHANGES)
async def test_each_kind_of_change_is_read_back_at_once(
    feed_redis: FeedRedis, build_services: BuildServices, kind: str
) -> None:
    # GIVEN a user with a skill, her profile cached
    services = build_services(feed_redis)
    me = await register(services)
    skill = await services.add_skill(me, "Rust", CORRELATION)
    await services.profile(me, me)
    assert await cached(feed_redis, me) is not None
    invalidations = sample("socialpipe_profile_cache_invalidations_total")
    # WHEN she changes it
    await change_profile(services, me, kind, skill.id)
    # THEN her next read shows the change, and one invalidation was counted
    mine = await services.profile(me, me)
    shown = {
        "profile": mine.headline == "Changed",
        "work": [w.company_name for w in mine.work_experience] == ["Acme"],
        "education": [e.school_name for e in mine.education] == ["MIT"],
        "skill": sorted(s.skill_name for s in mine.skills) == ["Go", "Rust"],
        "remove skill": mine.skills == (),
    }
    assert shown[kind], mine
    assert sample("socialpipe_profile_cache_invalidations_total") == invalidations + 1


# -- the race ------------------------------------------------------------------------------


class Gate:
    """Holds the first profile read from PostgreSQL, after it read, until released."""

    def __init__(self) -> None:
        self.armed = False
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()


class HeldUsers(PgUsers):
    def __init__(self, conn: Any, gate: Gate) -> None:
        super().__init__(conn)
        self._gate = gate

    async def load_profile(self, user_id: uuid.UUID) -> Profile | None:
        found = await super().load_profile(user_id)
        if self._gate.armed:
            self._gate.armed = False
            self._gate.read_done.set()
            await self._gate.release.wait()
        return found


class HeldUnits:
    """`PgUnitsOfWork` whose profile reads pass through a `Gate`."""

    def __init__(self, pool: asyncpg.Pool, gate: Gate) -> None:
        self._pool = pool
        self._gate = gate

    @asynccontextmanager
    async def __call__(self, *, transaction: bool = True) -> AsyncIterator[UnitOfWork]:
        async with self._pool.acquire() as conn:
            unit = PgUnitOfWork(conn)
            unit.users = HeldUsers(conn, self._gate)
            if not transaction:
                yield unit
                return
            async with conn.transaction():
                yield unit


async def test_a_read_that_raced_a_change_does_not_cache_the_old_profile(
    feed_redis: FeedRedis, build_services: BuildServices, db: asyncpg.Pool
) -> None:
    # GIVEN a user's profile, not cached
    gate = Gate()
    services = build_services(feed_redis, units=HeldUnits(db, gate))
    me = await register(services)
    await services.update_profile(me, {"headline": "Old"}, CORRELATION)
    await feed_redis.delete(profile_cache_key(me))
    # AND a reader that missed and has read the old profile from PostgreSQL
    gate.armed = True
    reader = asyncio.create_task(services.profile(None, me))
    await asyncio.wait_for(gate.read_done.wait(), 10)
    # WHEN the profile changes and commits, and only then the reader goes on to cache
    changed = await services.update_profile(me, {"headline": "New"}, CORRELATION)
    gate.release.set()
    old = await asyncio.wait_for(reader, 10)
    # THEN the reader answered what it read, but the cache holds the new profile
    assert (old.headline, changed.headline) == ("Old", "New")
    entry = await cached(feed_redis, me)
    assert entry is not None and entry.headline == "New"
    assert (await services.profile(me, me)).headline == "New"


async def test_tickets_from_before_or_during_a_change_store_nothing(
    feed_redis: FeedRedis, build_services: BuildServices
) -> None:
    # GIVEN a profile and the cache's answer to a read that missed
    services = build_services(feed_redis)
    me = await register(services)
    cache = RedisProfileCache(feed_redis, ttl_seconds=300, max_entries=1000)
    await feed_redis.delete(profile_cache_key(me))
    before = await cache.read(me)
    assert before.profile is None and before.ticket is not None
    profile = Profile(me, "Ada Lovelace", "Old", None, "public")
    # WHEN a change begins THEN a read gets no ticket, and the earlier ticket stores nothing
    await cache.begin_change(me)
    assert (await cache.read(me)).ticket is None
    assert not await cache.store(profile, before.ticket)
    # AND after it ends the earlier ticket still stores nothing; a fresh one does
    await cache.end_change(me)
    assert not await cache.store(profile, before.ticket)
    after = await cache.read(me)
    assert after.ticket is not None and await cache.store(profile, after.ticket)
    assert (await cache.read(me)).profile == profile


# -- privacy -----------------------------------------------------------------------------


async def test_a_cached_private_profile_shows_its_hidden_fields_only_to_connections(
    feed_redis: FeedRedis, build_services: BuildServices
) -> None:
    # GIVEN a private profile with a headline and a job, cached by its owner's read
    services = build_services(feed_redis)
    owner, friend, stranger = [await register(services, n) for n in ("Ada", "Bob", "Eve")]
    await services.update_profile(
        owner, {"headline": "Engineer", "visibility": "private"}, CORRELATION
    )
    await services.add_work_experience(owner, "Acme", "CTO", None, None, CORRELATION)
    await services.profile(owner, owner)
    entry = await cached(feed_redis, owner)
    assert entry is not None and entry.headline == "Engineer"
    # WHEN a stranger and nobody read it from the cache
    seen_by_stranger = await services.profile(stranger, owner)
    seen_anonymously = await services.profile(None, owner)
    # THEN neither sees the headline, location or work history
    for dto in (seen_by_stranger, seen_anonymously):
        assert (dto.headline, dto.location, dto.work_experience) == (None, None, ())
        assert dto.full_name == "Ada"
    # AND once a connection is accepted, the same cached entry shows it in full at once
    request = await services.request_connection(friend, owner, CORRELATION)
    await services.respond_to_connection(owner, request.id, True, CORRELATION)
    seen_by_friend = await services.profile(friend, owner)
    assert seen_by_friend.headline == "Engineer"
    assert [w.company_name for w in seen_by_friend.work_experience] == ["Acme"]
    assert (await services.profile(stranger, owner)).headline is None


# -- size ------------------------------------------------------------------------------------


def same_shard_ids(count: int, shard: int = 5) -> list[uuid.UUID]:
    return [
        uuid.UUID(int=uuid.uuid4().int // PROFILE_CACHE_SHARDS * PROFILE_CACHE_SHARDS + shard)
        for _ in range(count)
    ]


async def test_a_full_shard_evicts_its_least_recently_read_entry(feed_redis: FeedRedis) -> None:
    # GIVEN a cache with room for two entries per shard, on a clock the test moves
    now = [1_000.0]
    cache = RedisProfileCache(
        feed_redis, ttl_seconds=300, max_entries=2 * PROFILE_CACHE_SHARDS, clock=lambda: now[0]
    )
    a, b, c = same_shard_ids(3)
    evictions = sample("socialpipe_profile_cache_evictions_total")

    async def put(user: uuid.UUID) -> None:
        ticket = (await cache.read(user)).ticket
        assert ticket is not None and await cache.store(
            Profile(user, "N", None, None, "public"), ticket
        )

    # WHEN A and B are cached, A is read again, and C is cached
    await put(a)
    now[0] += 1
    await put(b)
    now[0] += 1
    assert (await cache.read(a)).profile is not None
    now[0] += 1
    await put(c)
    # THEN B, the least recently read, was evicted; A and C stay
    present = [await feed_redis.exists(profile_cache_key(u)) for u in (a, b, c)]
    assert present == [1, 0, 1]
    assert await feed_redis.zcard(profile_lru_key(5)) == 2
    assert sample("socialpipe_profile_cache_evictions_total") == evictions + 1


# -- Redis hanging ------------------------------------------------------------------------------


@pytest.fixture
async def silent_redis() -> AsyncIterator[redis_asyncio.Redis]:
    """A client of a loopback server that accepts connections and never answers."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis_asyncio.Redis(host="127.0.0.1", port=port, retry=no_client_retries())
    try:
        yield client
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_a_hanging_redis_costs_a_read_half_a_second_not_the_answer(
    silent_redis: redis_asyncio.Redis, build_services: BuildServices
) -> None:
    # GIVEN a profile, and a Redis that never answers
    services = build_services(silent_redis)
    me = await register(services)
    failures = sample("socialpipe_profile_cache_errors_total", operation="read")
    # WHEN it is read
    started = time.monotonic()
    dto = await services.profile(None, me)
    took = time.monotonic() - started
    # THEN PostgreSQL answers after the cache's time limit, and the failure is counted
    assert dto.full_name == "Ada Lovelace"
    assert CALL_TIMEOUT_SECONDS <= took < CALL_TIMEOUT_SECONDS + 2
    assert sample("socialpipe_profile_cache_errors_total", operation="read") == failures + 1
    # AND a change is refused (503) after the same limit
    with pytest.raises(ProfileChangesPaused):
        await services.update_profile(me, {"headline": "Later"}, CORRELATION)
