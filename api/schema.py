"""The GraphQL schema (operation names are a contract). Resolvers are thin: they
authenticate, call `Services`, and map results; no type has a secret field."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Any

import strawberry
from strawberry.types import Info

from api.errors import AUTH_REQUIRED, BadRequest, Unauthenticated
from api.services import Services
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

    def me(self) -> uuid.UUID:
        if self.token_error is not None:
            raise self.token_error
        if self.viewer_id is None:
            raise Unauthenticated(AUTH_REQUIRED)
        return self.viewer_id


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


def _id(value: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(str(value))


def _uuid(value: strawberry.ID, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(f"{field} is not a valid id.", field) from None


def to_profile(p: ProfileDTO) -> Profile:
    return Profile(
        user_id=_id(p.user_id),
        full_name=p.full_name,
        headline=p.headline,
        location=p.location,
        visibility=Visibility(p.visibility),
        is_own_profile=p.is_own_profile,
        work_experience=[
            WorkExperience(
                id=_id(w.id),
                company_name=w.company_name,
                title=w.title,
                start_date=w.start_date,
                end_date=w.end_date,
            )
            for w in p.work_experience
        ],
        education=[
            Education(
                id=_id(e.id),
                school_name=e.school_name,
                degree=e.degree,
                start_date=e.start_date,
                end_date=e.end_date,
            )
            for e in p.education
        ],
        skills=[Skill(id=_id(s.id), skill_name=s.skill_name) for s in p.skills],
    )


def to_connection(c: ConnectionRow) -> Connection:
    return Connection(
        id=_id(c.id),
        requester_id=_id(c.requester_id),
        addressee_id=_id(c.addressee_id),
        status=c.status,
        created_at=c.created_at,
    )


def to_message(m: MessageRow) -> Message:
    return Message(
        id=_id(m.id),
        sender_id=_id(m.sender_id),
        recipient_id=_id(m.recipient_id),
        body=m.body,
        created_at=m.created_at,
    )


@strawberry.type
class Query:
    @strawberry.field
    async def me(self, info: Info[ApiContext, None]) -> Me:
        c = ctx(info)
        me = c.me()
        email = await c.services.email_of(me)
        profile = await c.services.profile(me, me)
        return Me(id=_id(me), email=email, profile=to_profile(profile))

    @strawberry.field
    async def profile(self, info: Info[ApiContext, None], user_id: strawberry.ID) -> Profile:
        c = ctx(info)
        me = c.me()
        return to_profile(await c.services.profile(me, _uuid(user_id, "userId")))

    @strawberry.field
    async def feed(
        self, info: Info[ApiContext, None], first: int = 20, after: str | None = None
    ) -> FeedPage:
        c = ctx(info)
        page = await c.services.feed(c.me(), first, after)
        items = [
            FeedItem(
                id=_id(i.id),
                text_content=i.text_content,
                created_at=i.created_at,
                author=Author(user_id=_id(i.author.user_id), full_name=i.author.full_name),
            )
            for i in page.items
        ]
        return FeedPage(items=items, next_cursor=page.next_cursor)

    @strawberry.field
    async def search_users(
        self,
        info: Info[ApiContext, None],
        query: str = "",
        skills: list[str] | None = None,
        companies: list[str] | None = None,
        first: int = 20,
    ) -> list[SearchHit]:
        c = ctx(info)
        hits = await c.services.search_users(c.me(), query, skills or [], companies or [], first)
        return [
            SearchHit(user_id=_id(h.user_id), full_name=h.full_name, headline=h.headline)
            for h in hits
        ]

    @strawberry.field
    async def notifications(
        self, info: Info[ApiContext, None], first: int = 20
    ) -> list[Notification]:
        c = ctx(info)
        rows = await c.services.notifications(c.me(), first)
        return [
            Notification(
                id=_id(r.id),
                kind=r.kind,
                actor_id=_id(r.actor_id) if r.actor_id else None,
                subject_id=_id(r.subject_id) if r.subject_id else None,
                created_at=r.created_at,
                read=r.read_at is not None,
            )
            for r in rows
        ]

    @strawberry.field
    async def unread_notifications(self, info: Info[ApiContext, None]) -> int:
        c = ctx(info)
        return await c.services.unread_count(c.me())

    @strawberry.field
    async def messages(
        self, info: Info[ApiContext, None], with_user_id: strawberry.ID
    ) -> list[Message]:
        c = ctx(info)
        rows = await c.services.messages(c.me(), _uuid(with_user_id, "withUserId"))
        return [to_message(m) for m in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def register(self, info: Info[ApiContext, None], input: RegisterInput) -> AuthPayload:
        c = ctx(info)
        token, user_id = await c.services.register(
            input.email, input.password, input.date_of_birth, input.full_name, c.correlation_id
        )
        return AuthPayload(token=token, user=User(id=_id(user_id)))

    @strawberry.mutation
    async def login(self, info: Info[ApiContext, None], email: str, password: str) -> AuthPayload:
        token, user_id = await ctx(info).services.login(email, password)
        return AuthPayload(token=token, user=User(id=_id(user_id)))

    @strawberry.mutation
    async def update_profile(
        self, info: Info[ApiContext, None], input: UpdateProfileInput
    ) -> Profile:
        c = ctx(info)
        changes: dict[str, Any] = {}
        for name in ("full_name", "headline", "location", "visibility"):
            value = getattr(input, name)
            if value is strawberry.UNSET:
                continue
            if name in ("full_name", "visibility") and value is None:
                continue  # required columns: null means "leave as is"
            changes[name] = value.value if isinstance(value, Visibility) else value
        profile = await c.services.update_profile(c.me(), changes, c.correlation_id)
        return to_profile(profile)

    @strawberry.mutation
    async def add_work_experience(
        self, info: Info[ApiContext, None], input: WorkExperienceInput
    ) -> WorkExperience:
        c = ctx(info)
        w = await c.services.add_work_experience(
            c.me(),
            input.company_name,
            input.title,
            input.start_date,
            input.end_date,
            c.correlation_id,
        )
        return WorkExperience(
            id=_id(w.id),
            company_name=w.company_name,
            title=w.title,
            start_date=w.start_date,
            end_date=w.end_date,
        )

    @strawberry.mutation
    async def add_education(self, info: Info[ApiContext, None], input: EducationInput) -> Education:
        c = ctx(info)
        e = await c.services.add_education(
            c.me(),
            input.school_name,
            input.degree,
            input.start_date,
            input.end_date,
            c.correlation_id,
        )
        return Education(
            id=_id(e.id),
            school_name=e.school_name,
            degree=e.degree,
            start_date=e.start_date,
            end_date=e.end_date,
        )

    @strawberry.mutation
    async def add_skill(self, info: Info[ApiContext, None], skill_name: str) -> Skill:
        c = ctx(info)
        s = await c.services.add_skill(c.me(), skill_name, c.correlation_id)
        return Skill(id=_id(s.id), skill_name=s.skill_name)

    @strawberry.mutation
    async def remove_skill(self, info: Info[ApiContext, None], skill_id: strawberry.ID) -> bool:
        c = ctx(info)
        return await c.services.remove_skill(c.me(), _uuid(skill_id, "skillId"), c.correlation_id)

    @strawberry.mutation
    async def request_connection(
        self, info: Info[ApiContext, None], user_id: strawberry.ID
    ) -> Connection:
        c = ctx(info)
        row = await c.services.request_connection(
            c.me(), _uuid(user_id, "userId"), c.correlation_id
        )
        return to_connection(row)

    @strawberry.mutation
    async def respond_to_connection(
        self, info: Info[ApiContext, None], connection_id: strawberry.ID, accept: bool
    ) -> Connection:
        c = ctx(info)
        row = await c.services.respond_to_connection(
            c.me(), _uuid(connection_id, "connectionId"), accept, c.correlation_id
        )
        return to_connection(row)

    @strawberry.mutation
    async def create_post(self, info: Info[ApiContext, None], text_content: str) -> Post:
        c = ctx(info)
        post_id, created = await c.services.create_post(c.me(), text_content, c.correlation_id)
        return Post(id=_id(post_id), text_content=text_content, created_at=created)

    @strawberry.mutation
    async def create_comment(
        self, info: Info[ApiContext, None], post_id: strawberry.ID, text_content: str
    ) -> Comment:
        c = ctx(info)
        pid = _uuid(post_id, "postId")
        comment_id, created = await c.services.create_comment(
            c.me(), pid, text_content, c.correlation_id
        )
        return Comment(
            id=_id(comment_id), post_id=_id(pid), text_content=text_content, created_at=created
        )

    @strawberry.mutation
    async def send_message(
        self, info: Info[ApiContext, None], recipient_id: strawberry.ID, body: str
    ) -> Message:
        c = ctx(info)
        row = await c.services.send_message(c.me(), _uuid(recipient_id, "recipientId"), body)
        return to_message(row)

    @strawberry.mutation
    async def mark_notifications_read(self, info: Info[ApiContext, None]) -> int:
        """Marks every notification read; returns the unread count afterwards (0)."""
        c = ctx(info)
        return await c.services.mark_notifications_read(c.me())
