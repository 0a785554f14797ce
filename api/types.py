"""The GraphQL types, inputs and the mappings into them; no type has a secret field."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.types import Info

from api.errors import BadRequest, Unauthenticated
from api.limits import ApiLimits, ResolverSlots, SearchShares
from api.services import Services
from contracts.api_messages import AUTH_REQUIRED, INVALID_ID
from contracts.dto import ProfileDTO
from store.social import ConnectionRow, MessageRow


@dataclass
class ApiContext:
    """Per-request context: the services and who is calling (if anyone)."""

    services: Services
    viewer_id: uuid.UUID | None
    token_error: Unauthenticated | None
    correlation_id: str
    request: Any = None
    response: Any = None
    limits: ApiLimits = dataclasses.field(default_factory=ApiLimits)
    # None: resolvers run ungated (a context built outside the HTTP app).
    slots: ResolverSlots | None = None
    search_shares: SearchShares | None = None

    def me(self) -> uuid.UUID:
        if self.token_error is not None:
            raise self.token_error
        if self.viewer_id is None:
            raise Unauthenticated(AUTH_REQUIRED)
        return self.viewer_id

    def search_turn(self, user: uuid.UUID) -> AbstractAsyncContextManager[None]:
        """Wait for `user`'s share of search time (no wait outside the HTTP app)."""
        if self.search_shares is None:
            return contextlib.nullcontext()
        return self.search_shares.turn(user)


def ctx(info: Info[ApiContext, None]) -> ApiContext:
    return info.context


@strawberry.enum
class Visibility(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"


@strawberry.type
class WorkExperience:
    id: strawberry.ID
    company_name: str
    title: str
    start_date: dt.date | None
    end_date: dt.date | None


@strawberry.type
class Education:
    id: strawberry.ID
    school_name: str
    degree: str | None
    start_date: dt.date | None
    end_date: dt.date | None


@strawberry.type
class Skill:
    id: strawberry.ID
    skill_name: str


@strawberry.type
class Profile:
    user_id: strawberry.ID
    full_name: str
    headline: str | None
    location: str | None
    visibility: Visibility
    is_own_profile: bool
    work_experience: list[WorkExperience]
    education: list[Education]
    skills: list[Skill]


@strawberry.type
class User:
    id: strawberry.ID


@strawberry.type
class Me:
    id: strawberry.ID
    email: str
    profile: Profile | None


@strawberry.type
class AuthPayload:
    token: str
    user: User


@strawberry.type
class Author:
    user_id: strawberry.ID
    full_name: str


@strawberry.type
class FeedItem:
    id: strawberry.ID
    text_content: str
    created_at: dt.datetime
    author: Author


@strawberry.type
class FeedPage:
    items: list[FeedItem]
    next_cursor: str | None


@strawberry.type
class Post:
    id: strawberry.ID
    text_content: str
    created_at: dt.datetime


@strawberry.type
class Comment:
    id: strawberry.ID
    post_id: strawberry.ID
    text_content: str
    created_at: dt.datetime


@strawberry.type
class Connection:
    id: strawberry.ID
    requester_id: strawberry.ID
    addressee_id: strawberry.ID
    status: str
    created_at: dt.datetime


@strawberry.type
class Message:
    id: strawberry.ID
    sender_id: strawberry.ID
    recipient_id: strawberry.ID
    body: str
    created_at: dt.datetime


@strawberry.type
class SearchHit:
    user_id: strawberry.ID
    full_name: str
    headline: str | None


@strawberry.type
class Notification:
    id: strawberry.ID
    kind: str
    actor_id: strawberry.ID | None
    subject_id: strawberry.ID | None
    created_at: dt.datetime
    read: bool


@strawberry.input
class RegisterInput:
    email: str
    password: str
    full_name: str
    date_of_birth: dt.date


@strawberry.input
class UpdateProfileInput:
    full_name: str | None = strawberry.UNSET
    headline: str | None = strawberry.UNSET
    location: str | None = strawberry.UNSET
    visibility: Visibility | None = strawberry.UNSET


@strawberry.input
class WorkExperienceInput:
    company_name: str
    title: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None


@strawberry.input
class EducationInput:
    school_name: str
    degree: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


def to_id(value: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(str(value))


def parse_id(value: strawberry.ID, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(INVALID_ID.format(field=field), field) from None


def to_profile(p: ProfileDTO) -> Profile:
    return Profile(
        user_id=to_id(p.user_id),
        full_name=p.full_name,
        headline=p.headline,
        location=p.location,
        visibility=Visibility(p.visibility),
        is_own_profile=p.is_own_profile,
        work_experience=[
            WorkExperience(
                id=to_id(w.id),
                company_name=w.company_name,
                title=w.title,
                start_date=w.start_date,
                end_date=w.end_date,
            )
            for w in p.work_experience
        ],
        education=[
            Education(
                id=to_id(e.id),
                school_name=e.school_name,
                degree=e.degree,
                start_date=e.start_date,
                end_date=e.end_date,
            )
            for e in p.education
        ],
        skills=[Skill(id=to_id(s.id), skill_name=s.skill_name) for s in p.skills],
    )


def to_connection(c: ConnectionRow) -> Connection:
    return Connection(
        id=to_id(c.id),
        requester_id=to_id(c.requester_id),
        addressee_id=to_id(c.addressee_id),
        status=c.status,
        created_at=c.created_at,
    )


def to_message(m: MessageRow) -> Message:
    return Message(
        id=to_id(m.id),
        sender_id=to_id(m.sender_id),
        recipient_id=to_id(m.recipient_id),
        body=m.body,
        created_at=m.created_at,
    )
