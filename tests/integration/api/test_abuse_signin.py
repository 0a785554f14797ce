"""Sign-in and registration floods through HTTP, limited in the test Redis; the limiter
itself on one Redis node and on a Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.ratelimit import Rate, RedisRateLimiter
from contracts.keys import rate_limit_key
from tests.integration.api.client import GOOD_PASSWORD, Api, ApiFrom

ATTACKER, USER, OTHER = "198.51.100.7", "203.0.113.9", "192.0.2.44"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }"
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { user { id } } }"


def registration(email: str) -> dict[str, object]:
    return {
        "i": {
            "email": email,
            "password": GOOD_PASSWORD,
            "fullName": "New Person",
            "dateOfBirth": "1990-01-01",
        }
    }


def refused_for_rate(status: int, body: dict[str, Any], headers: dict[str, str]) -> int:
    """The Retry-After of a 429 RATE_LIMITED answer (fails the test on any other answer)."""
    assert status == 429, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED", error
    return int(headers["retry-after"])


async def call(
    api: Api, query: str, variables: dict[str, object]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    r = await api.client.post("/graphql", json={"query": query, "variables": variables})
    return r.status_code, r.json(), dict(r.headers)


async def test_a_flood_on_one_account_gets_429_and_another_account_signs_in(
    api_from: ApiFrom,
) -> None:
    # GIVEN Ada's and Bob's accounts, each registered from their own address
    ada, bob, attacker = api_from(USER), api_from(OTHER), api_from(ATTACKER)
    await ada.register("ada@example.com")
    await bob.register("bob@example.com")
    # WHEN eight clients guess Ada's password at once, three times each
    guesses = [
        call(attacker, LOGIN, {"e": "ada@example.com", "p": f"Guess-{i}-password"})
        for i in range(24)
    ]
    answers = await asyncio.gather(*guesses)
    # THEN ten guesses were checked (401) and the rest refused with 429 and a Retry-After
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [401] * 10 + [429] * 14
    waits = {refused_for_rate(*a) for a in answers if a[0] == 429}
    assert waits and all(0 < w <= 90 for w in waits)
    # AND the right password waits too, whoever sends it
    assert refused_for_rate(*await call(ada, LOGIN, {"e": "ada@example.com", "p": GOOD_PASSWORD}))
    # AND Bob signs in, from his address and from the attacker's
    for api in (bob, attacker):
        status, body, _ = await call(api, LOGIN, {"e": "bob@example.com", "p": GOOD_PASSWORD})
        assert status == 200 and body["data"]["login"]["token"], body


async def test_one_address_guessing_many_accounts_is_refused_and_others_are_not(
    api_from: ApiFrom,
) -> None:
    # GIVEN Bob's account
    bob, attacker = api_from(OTHER), api_from(ATTACKER)
    await bob.register("bob@example.com")
    # WHEN one address tries 31 different emails
    answers = [
        await call(attacker, LOGIN, {"e": f"guess{i}@example.com", "p": "Wrong-horse-11"})
        for i in range(31)
    ]
    # THEN the first 30 are checked and the 31st is refused for 10 s at most
    assert [a[0] for a in answers[:30]] == [401] * 30
    assert 0 < refused_for_rate(*answers[30]) <= 10
    # AND Bob, from his own address, signs in
    status, _, _ = await call(bob, LOGIN, {"e": "bob@example.com", "p": GOOD_PASSWORD})
    assert status == 200


async def test_registrations_from_one_address_are_limited_and_another_address_registers(
    api_from: ApiFrom,
) -> None:
    # GIVEN ten registrations from one address
    attacker, other = api_from(ATTACKER), api_from(OTHER)
    for i in range(10):
        status, body, _ = await call(attacker, REGISTER, registration(f"bulk{i}@example.com"))
        assert status == 200, body
    # WHEN it registers an eleventh THEN 429 with a Retry-After of at most 6 minutes
    wait = refused_for_rate(*await call(attacker, REGISTER, registration("bulk10@example.com")))
    assert 0 < wait <= 360
    # AND twenty register aliases in one request create no account at all
    aliases = " ".join(
        f'r{i}: register(input: {{email: "alias{i}@example.com", password: "{GOOD_PASSWORD}",'
        f' fullName: "A", dateOfBirth: "1990-01-01"}}) {{ user {{ id }} }}'
        for i in range(20)
    )
    status, body, _ = await call(attacker, f"mutation {{ {aliases} }}", {})
    assert status in (400, 429), body  # refused by the alias limit or the rate limit
    assert not any((body.get("data") or {}).values())
    # AND another address registers
    status, _, _ = await call(other, REGISTER, registration("someone@example.com"))
    assert status == 200


async def test_the_limiter_allows_a_burst_then_refuses_with_the_wait_on_redis(
    feed_redis: redis_asyncio.Redis | RedisCluster,
) -> None:
    # GIVEN a limit of 3 per minute on the test's Redis (one node, or the cluster)
    limiter, rate = RedisRateLimiter(feed_redis), Rate(3, 60)
    key = rate_limit_key("login-account", uuid.uuid4().hex)
    # WHEN four requests come at once
    decisions = [await limiter.take(key, rate) for _ in range(4)]
    # THEN three pass, the fourth waits for the next one of every 20 s
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 19 < decisions[3].retry_after <= 20
    # AND the key expires by itself once the limit has refilled
    assert 0 < await feed_redis.pttl(key) <= 60_000
    # AND a request given back can be made again, and giving all back empties the key
    await limiter.give_back(key, rate)
    assert (await limiter.take(key, rate)).allowed
    for _ in range(4):
        await limiter.give_back(key, rate)
    assert await feed_redis.exists(key) == 0
    # AND another subject's limit is untouched
    other = rate_limit_key("login-account", uuid.uuid4().hex)
    assert (await limiter.take(other, rate)).allowed


async def test_the_limiter_lets_requests_through_when_redis_is_down() -> None:
    # GIVEN a client of a Redis that does not answer
    down = redis_asyncio.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        # WHEN a request is counted THEN it passes (sign-in stays available)
        decision = await RedisRateLimiter(down).take("ratelimit:x:{y}", Rate(1, 60))
        assert decision.allowed
    finally:
        await down.aclose()
