"""Rate limits on signing in and registering, kept in Redis so they hold across replicas.

Each limit is a GCRA (generic cell rate algorithm) over one Redis key: the key
holds the "theoretical arrival time" of the next request, so a limit of `count`
per `period` allows a burst of `count` and then one more every
`period / count`, and a refused request learns exactly when it would pass
(`Retry-After`). The limits, and why they are what they are: docs/api-abuse.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog
from redis import exceptions as redis_errors

from api.errors import SignInBusy, TooManyRequests
from contracts.keys import rate_limit_key

log = structlog.get_logger("api")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` in a burst, refilled evenly over `period_seconds`."""

    count: int
    period_seconds: float

    @property
    def interval_ms(self) -> int:
        return max(1, round(self.period_seconds * 1000 / self.count))

    @property
    def period_ms(self) -> int:
        return round(self.period_seconds * 1000)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until the request would be allowed


def gcra(tat_ms: int | None, now_ms: int, rate: Rate) -> tuple[Decision, int]:
    """One request against a limit whose state is `tat_ms`: the decision and the new state.

    The Redis script below is this function in Lua; tests' in-memory limiter calls it.
    """
    new_tat = max(tat_ms or now_ms, now_ms) + rate.interval_ms
    wait_ms = new_tat - rate.period_ms - now_ms
    if wait_ms > 0:
        return Decision(False, wait_ms / 1000), tat_ms or now_ms
    return Decision(True), new_tat


def gcra_refund(tat_ms: int | None, now_ms: int, rate: Rate) -> int | None:
    """Give one counted request back: the new state, None once nothing is owed."""
    new_tat = (tat_ms or now_ms) - rate.interval_ms
    return new_tat if new_tat > now_ms else None


# KEYS[1] the limit's key; ARGV interval and period in ms, then 1 to count a request
# or -1 to give one back. Returns {allowed, wait ms}.
# Redis's own clock, so every API replica measures time alike; replicate_commands
# lets Redis 5 and 6 write after reading TIME (Redis 7 always does).
GCRA_SCRIPT: Final = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if ARGV[3] == '-1' then
  local back = tat - interval
  if back > now then redis.call('SET', KEYS[1], back, 'PX', back - now)
  else redis.call('DEL', KEYS[1]) end
  return {1, 0}
end
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - period - now
if wait > 0 then return {0, wait} end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, 0}
"""


# Redis (or a cluster slot) not answering; any other error is a defect and surfaces.
_UNAVAILABLE: Final = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterError,
)


class RateLimiter(Protocol):
    """Counts one request against a limit."""

    async def take(self, key: str, rate: Rate) -> Decision:
        """Allowed (and counted), or refused with the time until it would be allowed."""
        ...

    async def give_back(self, key: str, rate: Rate) -> None:
        """Uncount one request that `take` allowed."""
        ...


class RedisRateLimiter:
    """`RateLimiter` over one Redis node or a Redis Cluster (one key per call).

    When Redis does not answer, requests are allowed and a warning is logged:
    sign-in stays available, and the bounded password checks (`api.auth.Passwords`)
    still cap what a flood can cost.
    """

    def __init__(self, redis: Any) -> None:
        self._script = redis.register_script(GCRA_SCRIPT)

    async def take(self, key: str, rate: Rate) -> Decision:
        reply = await self._run(key, rate, 1)
        if reply is None:
            return Decision(True)
        allowed, wait_ms = reply
        return Decision(bool(allowed), int(wait_ms) / 1000)

    async def give_back(self, key: str, rate: Rate) -> None:
        await self._run(key, rate, -1)

    async def _run(self, key: str, rate: Rate, cost: int) -> Any:
        try:
            return await self._script(keys=[key], args=[rate.interval_ms, rate.period_ms, cost])
        except _UNAVAILABLE as exc:
            log.warning(
                "rate limit not checked: Redis unavailable",
                errorType=type(exc).__name__,
                errorMessage=str(exc),
            )
            return None


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """The sign-in and registration limits (docs/api-abuse.md says why these values)."""

    login_per_address: Rate = Rate(30, 300)
    login_per_account: Rate = Rate(10, 900)
    register_per_address: Rate = Rate(10, 3600)


class SignInGuard:
    """Applies `AbuseLimits` before any password is hashed or checked."""

    def __init__(self, limiter: RateLimiter, limits: AbuseLimits | None = None) -> None:
        self._limiter = limiter
        self.limits = limits or AbuseLimits()

    async def login_attempt(self, email: str, address: str | None) -> None:
        """Count a login try for its client address, then for its account (an email
        with no account counts the same, so the answer never tells which exist).

        Counted before the password is checked, so concurrent guesses cannot all
        slip under the limit; a right password gives its account's count back.
        """
        if address is not None:
            key = rate_limit_key("login-address", address_subject(address))
            await self._take(key, self.limits.login_per_address)
        key = rate_limit_key("login-account", email_subject(email))
        await self._take(key, self.limits.login_per_account)

    async def login_succeeded(self, email: str) -> None:
        """Only wrong passwords use up an account's tries (the address's are spent
        either way: giving them back would let one account of one's own refill them)."""
        key = rate_limit_key("login-account", email_subject(email))
        await self._limiter.give_back(key, self.limits.login_per_account)

    async def registration(self, address: str | None) -> None:
        """Count a registration for its client address."""
        if address is not None:
            key = rate_limit_key("register-address", address_subject(address))
            await self._take(key, self.limits.register_per_address)

    async def _take(self, key: str, rate: Rate) -> None:
        decision = await self._limiter.take(key, rate)
        if not decision.allowed:
            raise TooManyRequests(decision.retry_after)


def address_subject(address: str) -> str:
    """The client a limit counts: an IPv4 address, or an IPv6 address's /64 network
    (one host usually holds a whole /64, so counting single addresses would not hold)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def email_subject(email: str) -> str:
    """An account's key part: a digest, so Redis never holds the email address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def client_address(request: Any) -> str | None:
    """The address the request came from (behind a proxy: what the server was told
    the client is, see docs/api-abuse.md), or None when the server does not know."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) if client is not None else None


@contextmanager
def retry_after_header(response: Any) -> Iterator[None]:
    """Tell the client when to retry (`Retry-After`) when the request is refused for load."""
    try:
        yield
    except (TooManyRequests, SignInBusy) as exc:
        if response is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        raise
