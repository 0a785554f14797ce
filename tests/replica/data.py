"""Rows written on the primary, events naming them, and the replica-read counter."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from prometheus_client import REGISTRY

from contracts.events import Envelope, PostCreated, UserProfileUpdated, new_envelope, utcnow
from store.replica import SERVED_AFTER_WAIT, SERVED_BY_PRIMARY, SERVED_BY_REPLICA

OUTCOMES = (SERVED_BY_REPLICA, SERVED_AFTER_WAIT, SERVED_BY_PRIMARY)


async def add_user(pool: asyncpg.Pool, name: str, *, headline: str = "Engineer") -> uuid.UUID:
    """A user with a public profile; returns its id."""
    user_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
        f"{name}-{uuid.uuid4().hex[:8]}@example.com",
    )
    await pool.execute(
        "INSERT INTO user_profiles (user_id, full_name, headline, location, visibility)"
        " VALUES ($1, $2, $3, 'Berlin', 'public')",
        user_id,
        name,
        headline,
    )
    return user_id


async def connect(pool: asyncpg.Pool, author: uuid.UUID, others: list[uuid.UUID]) -> None:
    await pool.executemany(
        "INSERT INTO connections (requester_id, addressee_id, status) VALUES ($1, $2, 'accepted')",
        [(author, other) for other in others],
    )


async def add_post(pool: asyncpg.Pool, author: uuid.UUID) -> tuple[uuid.UUID, datetime]:
    row = await pool.fetchrow(
        "INSERT INTO posts (author_id, text_content) VALUES ($1, 'hello') RETURNING id, created_at",
        author,
    )
    assert row is not None
    return row["id"], row["created_at"]


async def profile_version(pool: asyncpg.Pool, user_id: uuid.UUID) -> int:
    return int(await pool.fetchval("SELECT version FROM user_profiles WHERE user_id = $1", user_id))


def post_created(post_id: uuid.UUID, author_id: uuid.UUID, created_at: datetime) -> Envelope:
    return new_envelope(PostCreated(post_id=post_id, author_id=author_id, created_at=created_at))


def profile_updated(user_id: uuid.UUID, version: int | None = None) -> Envelope:
    return new_envelope(UserProfileUpdated(user_id=user_id, updated_at=utcnow(), version=version))


def replica_reads(pipeline: str) -> dict[str, float]:
    """The counter's current values for `pipeline`, by outcome."""
    return {
        outcome: REGISTRY.get_sample_value(
            "socialpipe_replica_reads_total", {"pipeline": pipeline, "outcome": outcome}
        )
        or 0.0
        for outcome in OUTCOMES
    }


def reads_since(pipeline: str, before: dict[str, float]) -> dict[str, float]:
    now = replica_reads(pipeline)
    return {outcome: now[outcome] - before[outcome] for outcome in OUTCOMES}
