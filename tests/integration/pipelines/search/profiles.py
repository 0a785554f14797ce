"""Writing profiles into the real tables, for search tests."""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg


async def add_user(
    db: asyncpg.Pool,
    name: str,
    *,
    headline: str | None = "Engineer",
    location: str | None = "Berlin",
    visibility: str = "public",
    jobs: tuple[tuple[str, str], ...] = (),
    skills: tuple[str, ...] = (),
    schools: tuple[str, ...] = (),
) -> uuid.UUID:
    """Insert a user, its profile and child rows; returns the user id."""
    async with db.acquire() as conn, conn.transaction():
        uid: uuid.UUID = await conn.fetchval(
            "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@example.com"
        )
        await conn.execute(
            "INSERT INTO user_profiles (user_id, full_name, headline, location, visibility)"
            " VALUES ($1, $2, $3, $4, $5)",
            uid,
            name,
            headline,
            location,
            visibility,
        )
        for company, title in jobs:
            await conn.execute(
                "INSERT INTO work_experiences (user_id, company_name, title, start_date)"
                " VALUES ($1, $2, $3, $4)",
                uid,
                company,
                title,
                date(2020, 1, 1),
            )
        for skill in skills:
            await conn.execute(
                "INSERT INTO skills (user_id, skill_name) VALUES ($1, $2)", uid, skill
            )
        for school in schools:
            await conn.execute(
                "INSERT INTO educations (user_id, school_name) VALUES ($1, $2)", uid, school
            )
    return uid
