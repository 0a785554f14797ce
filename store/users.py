"""Users and their profiles: accounts, profile fields, work history, education, skills."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import asyncpg

from transforms.entities import Education, Profile, Skill, UserAccount, WorkExperience


class EmailTaken(Exception):
    """Another account already uses this email."""


async def create_user(
    conn: Any, *, email: str, password_hash: str, date_of_birth: date, full_name: str
) -> uuid.UUID:
    try:
        user_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO users (email, password_hash, date_of_birth) VALUES ($1, $2, $3)"
            " RETURNING id",
            email,
            password_hash,
            date_of_birth,
        )
    except asyncpg.UniqueViolationError:
        raise EmailTaken(email) from None
    await conn.execute(
        "INSERT INTO user_profiles (user_id, full_name) VALUES ($1, $2)", user_id, full_name
    )
    return user_id


async def account_by_email(conn: Any, email: str) -> UserAccount | None:
    row = await conn.fetchrow(
        "SELECT id, email, password_hash, mfa_secret, date_of_birth, created_at FROM users"
        " WHERE email = $1",
        email,
    )
    return UserAccount(**dict(row)) if row else None


async def account(conn: Any, user_id: uuid.UUID) -> UserAccount | None:
    row = await conn.fetchrow(
        "SELECT id, email, password_hash, mfa_secret, date_of_birth, created_at FROM users"
        " WHERE id = $1",
        user_id,
    )
    return UserAccount(**dict(row)) if row else None


async def hold_account(conn: Any, user_id: uuid.UUID) -> bool:
    """Whether the account exists. In a transaction the row is also share-locked until
    it ends, so the account cannot be deleted under the rows that will refer to it."""
    found = await conn.fetchval("SELECT true FROM users WHERE id = $1 FOR KEY SHARE", user_id)
    return bool(found)


async def set_password_hash(conn: Any, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def load_profile(conn: Any, user_id: uuid.UUID) -> Profile | None:
    """The profile with its work history, education and skills (four small reads)."""
    row = await conn.fetchrow(
        "SELECT user_id, full_name, headline, location, visibility FROM user_profiles"
        " WHERE user_id = $1",
        user_id,
    )
    if row is None:
        return None
    work = await conn.fetch(
        "SELECT id, company_name, title, start_date, end_date FROM work_experiences"
        " WHERE user_id = $1 ORDER BY start_date DESC NULLS LAST, id",
        user_id,
    )
    edu = await conn.fetch(
        "SELECT id, school_name, degree, start_date, end_date FROM educations"
        " WHERE user_id = $1 ORDER BY start_date DESC NULLS LAST, id",
        user_id,
    )
    skills = await conn.fetch(
        "SELECT id, skill_name FROM skills WHERE user_id = $1 ORDER BY skill_name, id", user_id
    )
    return Profile(
        **dict(row),
        work_experience=tuple(WorkExperience(**dict(r)) for r in work),
        education=tuple(Education(**dict(r)) for r in edu),
        skills=tuple(Skill(**dict(r)) for r in skills),
    )


async def update_profile(conn: Any, user_id: uuid.UUID, changes: dict[str, Any]) -> None:
    """Set the given columns (full_name, headline, location, visibility) of a profile."""
    allowed = {"full_name", "headline", "location", "visibility"}
    cols = [c for c in changes if c in allowed]
    if not cols:
        await conn.execute(
            "UPDATE user_profiles SET updated_at = now() WHERE user_id = $1", user_id
        )
        return
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
    await conn.execute(
        f"UPDATE user_profiles SET {sets}, updated_at = now() WHERE user_id = $1",
        user_id,
        *(changes[c] for c in cols),
    )


async def add_work_experience(
    conn: Any, user_id: uuid.UUID, company: str, title: str, start: date | None, end: date | None
) -> WorkExperience:
    row = await conn.fetchrow(
        "INSERT INTO work_experiences (user_id, company_name, title, start_date, end_date)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id, company_name, title, start_date, end_date",
        user_id,
        company,
        title,
        start,
        end,
    )
    return WorkExperience(**dict(row))


async def add_education(
    conn: Any,
    user_id: uuid.UUID,
    school: str,
    degree: str | None,
    start: date | None,
    end: date | None,
) -> Education:
    row = await conn.fetchrow(
        "INSERT INTO educations (user_id, school_name, degree, start_date, end_date)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id, school_name, degree, start_date, end_date",
        user_id,
        school,
        degree,
        start,
        end,
    )
    return Education(**dict(row))


async def add_skill(conn: Any, user_id: uuid.UUID, name: str) -> Skill:
    row = await conn.fetchrow(
        "INSERT INTO skills (user_id, skill_name) VALUES ($1, $2) RETURNING id, skill_name",
        user_id,
        name,
    )
    return Skill(**dict(row))


async def skill_owner(conn: Any, skill_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await conn.fetchval(
        "SELECT user_id FROM skills WHERE id = $1", skill_id
    )
    return owner


async def remove_skill(conn: Any, skill_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM skills WHERE id = $1", skill_id)


async def profile_version(conn: Any, user_id: uuid.UUID) -> int | None:
    version: int | None = await conn.fetchval(
        "SELECT version FROM user_profiles WHERE user_id = $1", user_id
    )
    return version
