"""The GraphQL schema (operation names are a contract). Resolvers are thin: they
authenticate, call `Services`, and map results into the types of `api.types`."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from api.limits import check_page_size, check_search
from api.ratelimit import client_address, retry_after_header
from api.types import (
    ApiContext,
    Author,
    AuthPayload,
    Comment,
    Connection,
    Education,
    EducationInput,
    FeedItem,
    FeedPage,
    Me,
    Message,
    Notification,
    Post,
    Profile,
    RegisterInput,
    SearchHit,
    Skill,
    UpdateProfileInput,
    User,
    Visibility,
    WorkExperience,
    WorkExperienceInput,
    ctx,
    parse_id,
    to_connection,
    to_id,
    to_message,
    to_profile,
)


@strawberry.type
class Query:
    @strawberry.field
    async def me(self, info: Info[ApiContext, None]) -> Me:
        c = ctx(info)
        me = c.me()
        email = await c.services.email_of(me)
        profile = await c.services.profile(me, me)
        return Me(id=to_id(me), email=email, profile=to_profile(profile))

    @strawberry.field
    async def profile(self, info: Info[ApiContext, None], user_id: strawberry.ID) -> Profile:
        c = ctx(info)
        me = c.me()
        return to_profile(await c.services.profile(me, parse_id(user_id, "userId")))

    @strawberry.field
    async def feed(
        self, info: Info[ApiContext, None], first: int = 20, after: str | None = None
    ) -> FeedPage:
        c = ctx(info)
        page = await c.services.feed(c.me(), check_page_size(first, c.limits), after)
        items = [
            FeedItem(
                id=to_id(i.id),
                text_content=i.text_content,
                created_at=i.created_at,
                author=Author(user_id=to_id(i.author.user_id), full_name=i.author.full_name),
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
        me = c.me()
        check_search(query, skills or [], companies or [], c.limits)
        first = check_page_size(first, c.limits)
        async with c.search_turn(me):
            hits = await c.services.search_users(me, query, skills or [], companies or [], first)
        return [
            SearchHit(user_id=to_id(h.user_id), full_name=h.full_name, headline=h.headline)
            for h in hits
        ]

    @strawberry.field
    async def notifications(
        self, info: Info[ApiContext, None], first: int = 20
    ) -> list[Notification]:
        c = ctx(info)
        rows = await c.services.notifications(c.me(), check_page_size(first, c.limits))
        return [
            Notification(
                id=to_id(r.id),
                kind=r.kind,
                actor_id=to_id(r.actor_id) if r.actor_id else None,
                subject_id=to_id(r.subject_id) if r.subject_id else None,
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
        rows = await c.services.messages(c.me(), parse_id(with_user_id, "withUserId"))
        return [to_message(m) for m in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def register(self, info: Info[ApiContext, None], input: RegisterInput) -> AuthPayload:
        c = ctx(info)
        with retry_after_header(c.response):
            token, user_id = await c.services.register(
                input.email,
                input.password,
                input.date_of_birth,
                input.full_name,
                c.correlation_id,
                client_address(c.request),
            )
        return AuthPayload(token=token, user=User(id=to_id(user_id)))

    @strawberry.mutation
    async def login(self, info: Info[ApiContext, None], email: str, password: str) -> AuthPayload:
        c = ctx(info)
        with retry_after_header(c.response):
            token, user_id = await c.services.login(email, password, client_address(c.request))
        return AuthPayload(token=token, user=User(id=to_id(user_id)))

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
            id=to_id(w.id),
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
            id=to_id(e.id),
            school_name=e.school_name,
            degree=e.degree,
            start_date=e.start_date,
            end_date=e.end_date,
        )

    @strawberry.mutation
    async def add_skill(self, info: Info[ApiContext, None], skill_name: str) -> Skill:
        c = ctx(info)
        s = await c.services.add_skill(c.me(), skill_name, c.correlation_id)
        return Skill(id=to_id(s.id), skill_name=s.skill_name)

    @strawberry.mutation
    async def remove_skill(self, info: Info[ApiContext, None], skill_id: strawberry.ID) -> bool:
        c = ctx(info)
        return await c.services.remove_skill(
            c.me(), parse_id(skill_id, "skillId"), c.correlation_id
        )

    @strawberry.mutation
    async def request_connection(
        self, info: Info[ApiContext, None], user_id: strawberry.ID
    ) -> Connection:
        c = ctx(info)
        row = await c.services.request_connection(
            c.me(), parse_id(user_id, "userId"), c.correlation_id
        )
        return to_connection(row)

    @strawberry.mutation
    async def respond_to_connection(
        self, info: Info[ApiContext, None], connection_id: strawberry.ID, accept: bool
    ) -> Connection:
        c = ctx(info)
        row = await c.services.respond_to_connection(
            c.me(), parse_id(connection_id, "connectionId"), accept, c.correlation_id
        )
        return to_connection(row)

    @strawberry.mutation
    async def create_post(self, info: Info[ApiContext, None], text_content: str) -> Post:
        c = ctx(info)
        post_id, created = await c.services.create_post(c.me(), text_content, c.correlation_id)
        return Post(id=to_id(post_id), text_content=text_content, created_at=created)

    @strawberry.mutation
    async def create_comment(
        self, info: Info[ApiContext, None], post_id: strawberry.ID, text_content: str
    ) -> Comment:
        c = ctx(info)
        pid = parse_id(post_id, "postId")
        comment_id, created = await c.services.create_comment(
            c.me(), pid, text_content, c.correlation_id
        )
        return Comment(
            id=to_id(comment_id), post_id=to_id(pid), text_content=text_content, created_at=created
        )

    @strawberry.mutation
    async def send_message(
        self, info: Info[ApiContext, None], recipient_id: strawberry.ID, body: str
    ) -> Message:
        c = ctx(info)
        row = await c.services.send_message(c.me(), parse_id(recipient_id, "recipientId"), body)
        return to_message(row)

    @strawberry.mutation
    async def mark_notifications_read(self, info: Info[ApiContext, None]) -> int:
        """Marks every notification read; returns the unread count afterwards (0)."""
        c = ctx(info)
        return await c.services.mark_notifications_read(c.me())
