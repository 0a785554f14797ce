"""One relationship per pair of users, held by PostgreSQL under racing requests.

The services run over the real database (no HTTP): dozens of tasks request,
accept and decline in both directions at once, over many pairs, and afterwards
no pair has two rows that count (pending or accepted).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable
from datetime import date

import asyncpg
import pytest
from argon2 import PasswordHasher

from api.auth import Passwords, Tokens
from api.errors import ApiError
from api.ratelimit import SignInGuard
from api.services import Services
from api.uow import PgUnitsOfWork
from contracts import validation as v
from tests.api_fakes import FakeRateLimiter, FakeUnreadCounters

CORRELATION = "race"
PAIRS = 12
ROUNDS = 4

LIVE_DUPLICATES = """
SELECT LEAST(requester_id, addressee_id) AS a, GREATEST(requester_id, addressee_id) AS b,
       string_agg(status, ',' ORDER BY status) AS live
  FROM connections WHERE status IN ('pending', 'accepted')
 GROUP BY 1, 2 HAVING count(*) > 1
"""


@pytest.fixture
def services(db: asyncpg.Pool) -> Services:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return Services(
        PgUnitsOfWork(db),
        None,
        None,
        FakeUnreadCounters(),
        Passwords(cheap),
        Tokens("test-secret-" + "x" * 40, 3600),
        today=lambda: date(2026, 1, 1),
        guard=SignInGuard(FakeRateLimiter()),
    )


async def add_users(db: asyncpg.Pool, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO users (id, email) VALUES ($1, $2)", [(u, f"{u}@example.com") for u in ids]
        )
        await conn.executemany(
            "INSERT INTO user_profiles (user_id, full_name) VALUES ($1, 'Racer')",
            [(u,) for u in ids],
        )
    return ids


async def pair_rows(db: asyncpg.Pool, a: uuid.UUID, b: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, requester_id, addressee_id, status FROM connections"
            " WHERE LEAST(requester_id, addressee_id) = LEAST($1::uuid, $2::uuid)"
            " AND GREATEST(requester_id, addressee_id) = GREATEST($1::uuid, $2::uuid)",
            a,
            b,
        )
    )


async def expect_api_error(call: Awaitable[object]) -> str:
    """Await a service call; an expected refusal is fine, anything else fails the test."""
    try:
        await call
    except ApiError as exc:
        return exc.message
    return "ok"


async def test_racing_requests_and_answers_never_leave_two_live_rows_for_a_pair(
    services: Services, db: asyncpg.Pool
) -> None:
    # GIVEN 12 pairs, each with a pending request from A to B
    users = await add_users(db, 2 * PAIRS)
    pairs = [(users[2 * i], users[2 * i + 1]) for i in range(PAIRS)]
    for a, b in pairs:
        await services.request_connection(a, b, CORRELATION)
    rng = random.Random(14)
    answers: list[str] = []
    # WHEN, round after round, every pair's requests are answered (accepted, or
    # accepted and declined at once) while both sides ask again, all at once
    for _ in range(ROUNDS):
        calls = []
        for a, b in pairs:
            for row in await pair_rows(db, a, b):
                # an accept and a decline of the same request race each other too
                for accept in (True, False) if rng.random() < 0.5 else (True,):
                    calls.append(
                        services.respond_to_connection(row["addressee_id"], row["id"], accept, "r")
                    )
            calls += [
                services.request_connection(a, b, "r"),
                services.request_connection(b, a, "r"),
            ]
        rng.shuffle(calls)
        assert len(calls) >= 3 * PAIRS
        answers += await asyncio.gather(*(expect_api_error(c) for c in calls))
    # THEN no pair has two rows that count, whatever the interleaving was
    duplicated = [r["live"] for r in await db.fetch(LIVE_DUPLICATES)]
    assert duplicated == [], f"{len(duplicated)} of {PAIRS} pairs have live duplicates"

    # AND every refusal was a contract answer, never a leaked database error
    expected = {
        "ok",
        v.CONNECTION_PENDING,
        v.ALREADY_CONNECTED,
        "This connection request is no longer pending.",
    }
    assert set(answers) <= expected
    # AND a pair accepted once is told so, in both directions, and was announced once
    accepted = await db.fetch(
        "SELECT requester_id, addressee_id FROM connections WHERE status = 'accepted'"
    )
    assert accepted, "no pair was ever accepted: the race did not run"
    announced = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = 'ConnectionAccepted'"
    )
    assert announced == len(accepted)
    row = accepted[0]
    for me, other in ((row[0], row[1]), (row[1], row[0])):
        assert await expect_api_error(services.request_connection(me, other, "r")) == (
            v.ALREADY_CONNECTED
        )
