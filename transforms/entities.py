"""Domain entities as read from the store: plain records, secrets included where the
table has them. They never leave the process; `transforms.dto` maps them to DTOs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class WorkExperience:
    id: uuid.UUID
    company_name: str
    title: str
    start_date: date | None
    end_date: date | None


@dataclass(frozen=True, slots=True)
class Education:
    id: uuid.UUID
    school_name: str
    degree: str | None
    start_date: date | None
    end_date: date | None


@dataclass(frozen=True, slots=True)
class Skill:
    id: uuid.UUID
    skill_name: str


@dataclass(frozen=True, slots=True)
class UserAccount:
    """A `users` row. `password_hash` and `mfa_secret` stop here.

    See docs/architecture.md#secrets-and-privacy.
    """

    id: uuid.UUID
    email: str
    password_hash: str | None
    mfa_secret: str | None
    date_of_birth: date | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: uuid.UUID
    full_name: str
    headline: str | None
    location: str | None
    visibility: str
    work_experience: tuple[WorkExperience, ...] = field(default=())
    education: tuple[Education, ...] = field(default=())
    skills: tuple[Skill, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class FeedPost:
    id: uuid.UUID
    author_id: uuid.UUID
    author_name: str
    text_content: str
    created_at: datetime
