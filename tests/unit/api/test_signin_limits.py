"""Sign-in and registration limits, and bounded password checks, without Redis or PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import date
from typing import Literal

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from api.auth import Passwords, Tokens
from api.errors import SignInBusy, TooManyRequests, Unauthenticated
from api.ratelimit import AbuseLimits, Rate, SignInGuard, address_subject, gcra
from api.services import Services
from config.api import sign_in_limits
from contracts.api_messages import BAD_CREDENTIALS
from tests.api_fakes import FakeRateLimiter, FakeUnitsOfWork, FakeUnreadCounters
from tests.settings import SettingsFactory

GOOD = "Correct-horse-1"
WRONG = "Wrong-horse-11"
ATTACKER, NEIGHBOUR = "198.51.100.7", "203.0.113.9"
LIMITS = AbuseLimits()


class CountingHasher(PasswordHasher):
    """The cheapest argon2, counting the checks it makes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checks: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.checks.append(str(hash))
        return super().verify(hash, password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def limiter() -> FakeRateLimiter:
    return FakeRateLimiter()


@pytest.fixture
async def services(hasher: CountingHasher, limiter: FakeRateLimiter) -> Services:
    made = Services(
        FakeUnitsOfWork(),
        None,
        None,
        FakeUnreadCounters(),
        Passwords(hasher),
        Tokens("test-secret-" + "x" * 40, 3600),
        today=lambda: date(2026, 1, 1),
        guard=SignInGuard(limiter, LIMITS),
    )
    await made.register("ada@example.com", GOOD, date(1990, 1, 1), "Ada", "c")
    await made.register("bob@example.com", GOOD, date(1990, 1, 1), "Bob", "c")
    limiter.state.clear()
    return made


async def failures(services: Services, email: str, password: str, address: str, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Unauthenticated, match=BAD_CREDENTIALS):
            await services.login(email, password, address)


async def test_an_account_is_slowed_after_ten_tries_and_others_are_unaffected(
    services: Services, hasher: CountingHasher, limiter: FakeRateLimiter
) -> None:
    # GIVEN ten wrong guesses at Ada's password from one address
    await failures(services, "ada@example.com", WRONG, ATTACKER, 10)
    checks = len(hasher.checks)
    # WHEN an eleventh comes, even with the right password THEN it is refused with
    # 429 and a whole-second wait, before any password is checked
    with pytest.raises(TooManyRequests) as raised:
        await services.login("ada@example.com", GOOD, ATTACKER)
    assert raised.value.status == 429 and raised.value.code == "RATE_LIMITED"
    assert raised.value.retry_after == 90  # one try per 900 s / 10
    assert len(hasher.checks) == checks
    # AND Bob signs in, from the attacker's address as from his own
    for address in (ATTACKER, NEIGHBOUR):
        assert (await services.login("bob@example.com", GOOD, address))[0]
    # AND once the wait is over, Ada's right password works again
    limiter.now_ms += raised.value.retry_after * 1000
    assert (await services.login("ada@example.com", GOOD, NEIGHBOUR))[0]


async def test_right_passwords_do_not_use_up_an_accounts_tries(services: Services) -> None:
    # GIVEN Ada signing in rightly 20 times from her address (under its 30)
    for _ in range(20):
        assert (await services.login("ada@example.com", GOOD, NEIGHBOUR))[0]
    # WHEN she then mistypes nine times THEN each is checked, none refused
    await failures(services, "ada@example.com", WRONG, NEIGHBOUR, 9)
    # AND the tenth wrong try is still checked; the eleventh try waits
    await failures(services, "ada@example.com", WRONG, ATTACKER, 1)
    with pytest.raises(TooManyRequests):
        await services.login("ada@example.com", GOOD, ATTACKER)


async def test_an_unknown_email_is_limited_and_checked_exactly_like_a_known_one(
    services: Services, hasher: CountingHasher
) -> None:
    # WHEN an email with no account is tried as often as a real one
    await failures(services, "nobody@example.com", WRONG, ATTACKER, 10)
    # THEN each try cost one argon2 check (against the decoy), as a real account's does
    assert len(hasher.checks) == 10 and len(set(hasher.checks)) == 1
    # AND the eleventh is refused the same way, so the answers tell nothing apart
    with pytest.raises(TooManyRequests) as raised:
        await services.login("nobody@example.com", WRONG, ATTACKER)
    assert raised.value.retry_after == 90


async def test_one_address_trying_many_accounts_is_slowed_and_another_address_is_not(
    services: Services,
) -> None:
    # GIVEN 30 tries from one address, each at a different email (under each account's limit)
    for i in range(30):
        await failures(services, f"guess{i}@example.com", WRONG, ATTACKER, 1)
    # WHEN the address tries again, even Bob's right password THEN 429, one try per 10 s
    with pytest.raises(TooManyRequests) as raised:
        await services.login("bob@example.com", GOOD, ATTACKER)
    assert raised.value.retry_after == 10
    # AND Bob, from his own address, signs in
    assert (await services.login("bob@example.com", GOOD, NEIGHBOUR))[0]


async def test_registration_is_limited_per_address(services: Services) -> None:
    # GIVEN ten accounts registered from one address
    for i in range(10):
        await services.register(f"new{i}@example.com", GOOD, date(1990, 1, 1), "New", "c", ATTACKER)
    # WHEN it registers an eleventh THEN 429, one more every 6 minutes
    with pytest.raises(TooManyRequests) as raised:
        await services.register("new10@example.com", GOOD, date(1990, 1, 1), "New", "c", ATTACKER)
    assert raised.value.retry_after == 360
    # AND another address registers
    await services.register("new10@example.com", GOOD, date(1990, 1, 1), "New", "c", NEIGHBOUR)


def test_the_settings_set_the_counts_over_fixed_periods(
    settings_factory: SettingsFactory,
) -> None:
    chosen = settings_factory(
        api_logins_per_address=5, api_login_failures_per_account=3, api_registrations_per_address=2
    )
    assert sign_in_limits(chosen) == AbuseLimits(Rate(5, 300), Rate(3, 900), Rate(2, 3600))
    assert sign_in_limits(settings_factory()) == LIMITS


def test_ipv6_clients_are_counted_by_their_64_network() -> None:
    assert address_subject("2001:db8:1:2::5") == address_subject("2001:db8:1:2:ffff::9")
    assert address_subject("2001:db8:1:3::5") != address_subject("2001:db8:1:2::5")
    assert address_subject("192.0.2.1") == "192.0.2.1"


def test_gcra_allows_a_burst_then_one_per_interval() -> None:
    rate, now, tat = Rate(3, 30), 0, None
    for _ in range(3):
        decision, tat = gcra(tat, now, rate)
        assert decision.allowed
    decision, tat = gcra(tat, now, rate)
    assert (decision.allowed, decision.retry_after) == (False, 10.0)
    decision, tat = gcra(tat, now + 10_000, rate)
    assert decision.allowed


class SlowHasher(PasswordHasher):
    """Blocks for a while in each check, recording how many run at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.seconds, self.running, self.most = seconds, 0, 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        raise VerifyMismatchError()


async def test_password_checks_run_two_at_a_time_off_the_event_loop() -> None:
    # GIVEN checks that take 50 ms each, two slots
    hasher = SlowHasher(0.05)
    passwords = Passwords(hasher, concurrency=2, max_waiting=100)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(ticker())
    # WHEN eight are asked at once
    results = await asyncio.gather(*(passwords.verify(None, "x") for _ in range(8)))
    beat.cancel()
    # THEN at most two ran together, none succeeded, and the loop kept turning meanwhile
    assert hasher.most == 2 and results == [False] * 8
    assert ticks >= 20  # ~200 ms of checks at one tick per 5 ms, if the loop was free


async def test_a_full_queue_of_password_checks_refuses_at_once_with_busy() -> None:
    # GIVEN one slot taken and two checks waiting (the most allowed)
    passwords = Passwords(SlowHasher(0.1), concurrency=1, max_waiting=2)
    started = [asyncio.create_task(passwords.verify(None, "x")) for _ in range(3)]
    await asyncio.sleep(0)  # each task runs to its first wait: one checks, two queue
    # WHEN one more arrives THEN it is refused at once: 503 with a Retry-After
    with pytest.raises(SignInBusy) as raised:
        await passwords.verify(None, "x")
    assert (raised.value.status, raised.value.retry_after) == (503, 1)
    # AND the waiting ones still finish
    assert await asyncio.gather(*started) == [False] * 3
