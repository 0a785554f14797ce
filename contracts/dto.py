"""What the API shows: no DTO has a password hash or an MFA secret.

See docs/architecture.md#secrets-and-privacy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class WorkExperienceDTO:
    id: uuid.UUID
    company_name: str
    title: str
    start_date: date | None
    end_date: date | None


@dataclass(frozen=True, slots=True)
class EducationDTO:
    id: uuid.UUID
    school_name: str
    degree: str | None
    start_date: date | None
    end_date: date | None


@dataclass(frozen=True, slots=True)
class SkillDTO:
    id: uuid.UUID
    skill_name: str


@dataclass(frozen=True, slots=True)
class ProfileDTO:
    """A profile as one viewer may see it: private fields are None/empty for strangers."""

    user_id: uuid.UUID
    full_name: str
    headline: str | None
    location: str | None
    visibility: str
    is_own_profile: bool
    work_experience: tuple[WorkExperienceDTO, ...]
    education: tuple[EducationDTO, ...]
    skills: tuple[SkillDTO, ...]


@dataclass(frozen=True, slots=True)
class AuthorDTO:
    user_id: uuid.UUID
    full_name: str


@dataclass(frozen=True, slots=True)
class FeedItemDTO:
    id: uuid.UUID
    text_content: str
    created_at: datetime
    author: AuthorDTO


@dataclass(frozen=True, slots=True)
class SearchHitDTO:
    user_id: uuid.UUID
    full_name: str
    headline: str | None
