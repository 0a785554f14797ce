"""The API's profile cache in Redis, and what a Redis failure means for it.

How it works and why: docs/profile-cache.md. In short:

- an entry is the whole profile as JSON (`profile:{p<shard>}:<userId>`, no
  email, no password hash: `Profile` has neither), with a TTL; privacy is
  applied per viewer after the read, so one entry serves every viewer;
- the size is bounded per shard: each of the `PROFILE_CACHE_SHARDS` shards keeps
  a sorted set of its entries by last read, and a store evicts the least
  recently read entries beyond the shard's share of `max_entries`;
- a change brackets its transaction: `begin_change` drops the entry and holds
  a "writing" count that forbids stores, `end_change` drops it again and bumps
  the entry's generation, so a reader that read PostgreSQL before the commit
  cannot cache what it read (its ticket names an older generation).

`FailSafeProfileCache` is the one place that decides what a Redis failure
means: reads and stores fall back to PostgreSQL (a warning and a metric); a
change that cannot begin is refused with 503, since it could not be made
visible to its author.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, Final

import structlog

from api.errors import ApiError
from api.ports import CachedProfile, ProfileCache
from contracts.api_messages import PROFILE_CHANGES_PAUSED
from contracts.errors import PipelineError
from contracts.failures import REDIS, boundary
from contracts.keys import (
    PROFILE_CACHE_SHARDS,
    profile_cache_key,
    profile_cache_shard,
    profile_lru_key,
)
from contracts.metrics import (
    PROFILE_CACHE_ERRORS,
    PROFILE_CACHE_EVICTIONS,
    PROFILE_CACHE_HITS,
    PROFILE_CACHE_INVALIDATIONS,
    PROFILE_CACHE_MISSES,
)
from transforms.entities import Education, Profile, Skill, WorkExperience

log = structlog.get_logger("api")

# Bumped when the JSON shape changes: an entry of another shape reads as a miss
# and the fresh read overwrites it.
FORMAT: Final = 1
# Longer than any API transaction: a change whose end_change never reached Redis
# keeps its profile uncached this long, then the count lapses.
WRITING_TTL_SECONDS: Final = 60
# Longer than any read between its ticket and its store: a generation that
# lapsed and restarted could otherwise accept a ticket from before the change.
GENERATION_TTL_SECONDS: Final = 3600
# A cache call slower than this counts as failed: a Redis that hangs costs a read
# this much, not the client's whole socket timeout (5 s).
CALL_TIMEOUT_SECONDS: Final = 0.5

# KEYS: entry, generation, writing, shard's LRU set. ARGV: now (ms).
# Returns {entry or nil, generation, writing}; a hit counts as a read for eviction.
READ: Final = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('ZADD', KEYS[4], 'XX', ARGV[1], KEYS[1]) end
return {value, redis.call('GET', KEYS[2]) or '', redis.call('EXISTS', KEYS[3])}
"""

# ARGV: value, TTL (s), now (ms), the ticket's generation, the shard's capacity.
# Returns -1 when refused (a change since the ticket, or one in flight), else how
# many entries were evicted. Evicted entries share the shard's hash tag, so
# deleting them stays within this script's slot on a cluster.
STORE: Final = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return -1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[4], now, KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - ttl * 1000))
redis.call('EXPIRE', KEYS[4], ttl)
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])
if over <= 0 then return 0 end
local oldest = redis.call('ZPOPMIN', KEYS[4], over)
for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
return over
"""

# ARGV: +1 (begin) or -1 (end), the writing count's TTL, the generation's TTL.
CHANGE: Final = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[4], KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if ARGV[1] == '1' then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
elseif redis.call('DECR', KEYS[3]) <= 0 then
  redis.call('DEL', KEYS[3])
end
return 1
"""


def encode_profile(profile: Profile) -> bytes:
    """The profile as the cache stores it: compact JSON, dates as ISO strings."""
    body = {
        "f": FORMAT,
        "id": str(profile.user_id),
        "name": profile.full_name,
        "headline": profile.headline,
        "location": profile.location,
        "visibility": profile.visibility,
        "work": [
            [str(w.id), w.company_name, w.title, _day(w.start_date), _day(w.end_date)]
            for w in profile.work_experience
        ],
        "education": [
            [str(e.id), e.school_name, e.degree, _day(e.start_date), _day(e.end_date)]
            for e in profile.education
        ],
        "skills": [[str(s.id), s.skill_name] for s in profile.skills],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_profile(raw: bytes | str) -> Profile:
    """The cached profile; ValueError when the entry is not one this code wrote."""
    try:
        body = json.loads(raw)
        if body["f"] != FORMAT:
            raise ValueError(f"format {body['f']!r}, expected {FORMAT}")
        return Profile(
            user_id=uuid.UUID(body["id"]),
            full_name=body["name"],
            headline=body["headline"],
            location=body["location"],
            visibility=body["visibility"],
            work_experience=tuple(
                WorkExperience(uuid.UUID(i), c, t, _date(s), _date(e))
                for i, c, t, s, e in body["work"]
            ),
            education=tuple(
                Education(uuid.UUID(i), n, d, _date(s), _date(e))
                for i, n, d, s, e in body["education"]
            ),
            skills=tuple(Skill(uuid.UUID(i), n) for i, n in body["skills"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Not a cached profile: {type(exc).__name__}: {exc}") from None


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisProfileCache:
    """`ProfileCache` over a Redis client, one node or a cluster (see the module)."""

    def __init__(
        self,
        client: Any,
        *,
        ttl_seconds: int,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl_seconds
        # Each shard keeps its share: the total stays within max_entries plus a
        # rounding of at most one entry per shard.
        self._per_shard = max(1, math.ceil(max_entries / PROFILE_CACHE_SHARDS))
        self._clock = clock
        self._read = client.register_script(READ)
        self._store = client.register_script(STORE)
        self._change = client.register_script(CHANGE)

    async def read(self, user_id: uuid.UUID) -> CachedProfile:
        with boundary("Reading a cached profile from Redis", dependency=REDIS):
            value, generation, writing = await self._read(
                keys=_keys(user_id), args=[self._now_ms()]
            )
        ticket = None if int(writing) else _text(generation).encode()
        if value is None:
            return CachedProfile(None, ticket)
        try:
            return CachedProfile(decode_profile(value), ticket)
        except ValueError as exc:
            # Another shape (an older release's entry): a miss, and the fresh read replaces it.
            log.warning("profile cache entry unreadable", userId=str(user_id), error=str(exc))
            return CachedProfile(None, ticket)

    async def store(self, profile: Profile, ticket: bytes) -> bool:
        args: list[bytes | int] = [
            encode_profile(profile),
            self._ttl,
            self._now_ms(),
            ticket,
            self._per_shard,
        ]
        with boundary("Caching a profile in Redis", dependency=REDIS):
            evicted = int(await self._store(keys=_keys(profile.user_id), args=args))
        if evicted > 0:
            PROFILE_CACHE_EVICTIONS.inc(evicted)
        return evicted >= 0

    async def begin_change(self, user_id: uuid.UUID) -> None:
        with boundary("Dropping a cached profile before its change", dependency=REDIS):
            await self._change(keys=_keys(user_id), args=_change_args(+1))

    async def end_change(self, user_id: uuid.UUID) -> None:
        with boundary("Dropping a cached profile after its change", dependency=REDIS):
            await self._change(keys=_keys(user_id), args=_change_args(-1))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _keys(user_id: uuid.UUID) -> list[str]:
    entry = profile_cache_key(user_id)
    lru = profile_lru_key(profile_cache_shard(user_id))
    return [entry, f"{entry}:gen", f"{entry}:writing", lru]


def _change_args(direction: int) -> list[int]:
    return [direction, WRITING_TTL_SECONDS, GENERATION_TTL_SECONDS]


class NoProfileCache:
    """`ProfileCache` that keeps nothing: PROFILE_CACHE_MAX_ENTRIES=0, and unit tests."""

    async def read(self, user_id: uuid.UUID) -> CachedProfile:
        return CachedProfile(None, None)

    async def store(self, profile: Profile, ticket: bytes) -> bool:
        return False

    async def begin_change(self, user_id: uuid.UUID) -> None:
        return None

    async def end_change(self, user_id: uuid.UUID) -> None:
        return None


class ProfileChangesPaused(ApiError):
    """The cache could not be told of a change, so the change was not made (retry)."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__(PROFILE_CHANGES_PAUSED)


class FailSafeProfileCache:
    """The services' policy over a `ProfileCache`: its metrics, and what a failure means.

    A read or store that fails, or takes over `timeout` seconds, is a miss: the
    profile is served from PostgreSQL, with a warning and
    `socialpipe_profile_cache_errors_total`. A change that cannot begin is
    refused before its transaction (`ProfileChangesPaused`, 503): made anyway,
    its author could read the old profile from a cache that comes back. A change
    whose end fails has committed; its entry stays dropped and uncached until the
    writing count lapses (`WRITING_TTL_SECONDS`).
    """

    def __init__(self, cache: ProfileCache, *, timeout: float = CALL_TIMEOUT_SECONDS) -> None:
        self._cache = cache
        self._timeout = timeout

    async def read(self, user_id: uuid.UUID) -> CachedProfile:
        try:
            async with asyncio.timeout(self._timeout):
                cached = await self._cache.read(user_id)
        except (PipelineError, TimeoutError) as exc:
            _failed("read", exc)
            cached = CachedProfile(None, None)
        (PROFILE_CACHE_MISSES if cached.profile is None else PROFILE_CACHE_HITS).inc()
        return cached

    async def store(self, profile: Profile, ticket: bytes | None) -> None:
        if ticket is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._cache.store(profile, ticket)
        except (PipelineError, TimeoutError) as exc:
            _failed("store", exc)

    @asynccontextmanager
    async def changing(self, user_id: uuid.UUID) -> AsyncIterator[None]:
        """Around the unit of work that changes `user_id`'s profile."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._cache.begin_change(user_id)
        except (PipelineError, TimeoutError) as exc:
            _failed("begin_change", exc)
            raise ProfileChangesPaused() from exc
        try:
            yield
        finally:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._cache.end_change(user_id)
                PROFILE_CACHE_INVALIDATIONS.inc()
            except (PipelineError, TimeoutError) as exc:
                _failed("end_change", exc)


def _failed(operation: str, exc: Exception) -> None:
    PROFILE_CACHE_ERRORS.labels(operation).inc()
    log.warning(
        "profile cache call failed",
        operation=operation,
        errorType=type(exc).__name__,
        error=str(exc),
    )
