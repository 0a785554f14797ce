"""The API's services: its rules, each change and its event in one unit of work.

The outbox: docs/architecture.md#the-outbox.

Resolvers call these; they never touch SQL or the outbox themselves. Services
reach PostgreSQL only through `api.uow.UnitsOfWork`, so their rules can be
tested over an in-memory unit of work.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from api.auth import Passwords, Tokens
from api.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from api.ports import PeopleSearch, ProfileCache, UnreadCounters
from api.profile_cache import FailSafeProfileCache, NoProfileCache
from api.ratelimit import RedisRateLimiter, SignInGuard
from api.uow import UnitOfWork, UnitsOfWork
from contracts import validation as v
from contracts.api_messages import (
    ACCOUNT_GONE,
    BAD_CREDENTIALS,
    BAD_CURSOR,
    NO_SUCH_CONNECTION_REQUEST,
    NO_SUCH_POST,
    NO_SUCH_SKILL,
    NO_SUCH_USER,
    NOT_PENDING,
    NOT_YOUR_DATA,
    ONLY_ADDRESSEE,
    ONLY_CONNECTIONS,
    ONLY_CONNECTIONS_COMMENT,
    SKILL_NAME_REQUIRED,
)
from contracts.dto import FeedItemDTO, ProfileDTO, SearchHitDTO
from contracts.events import (
    CommentCreated,
    ConnectionAccepted,
    ConnectionRequested,
    PostCreated,
    UserProfileUpdated,
)
from contracts.keys import feed_key
from store import notifications as notes
from store.social import AlreadyConnected, ConnectionRow, MessageRow, PendingRequestExists
from store.users import EmailTaken
from transforms.dto import feed_item_dto, profile_dto
from transforms.entities import Education, Skill, WorkExperience

TEXT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[FeedItemDTO]
    next_cursor: str | None


class Services:
    """Everything the resolvers may do, over units of work, one Redis (feeds) and three ports.

    `profiles` caches whole profiles (docs/profile-cache.md); without one, every
    profile read goes to PostgreSQL.
    """

    def __init__(
        self,
        units: UnitsOfWork,
        redis: Any,
        search: PeopleSearch | None,
        counters: UnreadCounters,
        passwords: Passwords,
        tokens: Tokens,
        *,
        today: Callable[[], date] | None = None,
        guard: SignInGuard | None = None,
        feed_max_length: int = 800,
        profiles: ProfileCache | None = None,
    ) -> None:
        self.units = units
        self.redis = redis
        self.search = search
        self.counters = counters
        self.passwords = passwords
        self.tokens = tokens
        self._today = today or (lambda: datetime.now(UTC).date())
        self.guard = guard or SignInGuard(RedisRateLimiter(redis))
        # A feed list may briefly hold a few entries past it (amortised trimming):
        # pages stop at it, so readers never see them.
        self.feed_max_length = feed_max_length
        self.profiles = FailSafeProfileCache(profiles or NoProfileCache())

    # -- accounts -------------------------------------------------------------

    async def register(
        self,
        email: str,
        password: str,
        date_of_birth: date,
        full_name: str,
        correlation: str,
        client: str | None = None,
    ) -> tuple[str, uuid.UUID]:
        """A new account. `client` is the caller's address, for the registration limit.

        A taken email is refused with the seed's message (docs/api-abuse.md says why);
        the limit per address bounds how fast anyone can ask about emails that way.
        """
        email, full_name = _checked(
            v.check_registration, email, password, date_of_birth, full_name, self._today()
        )
        await self.guard.registration(client)
        password_hash = await self.passwords.hash(password)
        async with self.units() as uow:
            try:
                user_id = await uow.users.create_user(
                    email=email,
                    password_hash=password_hash,
                    date_of_birth=date_of_birth,
                    full_name=full_name,
                )
            except EmailTaken:
                raise BadRequest(v.EMAIL_TAKEN, "email") from None
            await self._profile_changed(uow, user_id, correlation)
        return self.tokens.issue(user_id), user_id

    async def login(
        self, email: str, password: str, client: str | None = None
    ) -> tuple[str, uuid.UUID]:
        """A token for the account, if the password is right. Every try counts against
        the limits of its client address and of its account before any hashing; an
        unknown email is checked against a decoy hash, so it costs and answers the same."""
        await self.guard.login_attempt(email, client)
        async with self.units(transaction=False) as uow:
            account = await uow.users.account_by_email(email.strip().lower())
        if not await self.passwords.verify(account.password_hash if account else None, password):
            raise Unauthenticated(BAD_CREDENTIALS)
        assert account is not None
        await self.guard.login_succeeded(email)
        return self.tokens.issue(account.id), account.id

    async def email_of(self, user_id: uuid.UUID) -> str:
        async with self.units(transaction=False) as uow:
            account = await uow.users.account(user_id)
        if account is None:
            raise Unauthenticated(ACCOUNT_GONE)
        return account.email

    # -- profile --------------------------------------------------------------

    async def profile(self, viewer: uuid.UUID | None, user_id: uuid.UUID) -> ProfileDTO:
        """The profile as `viewer` may see it: the whole profile from the cache or
        PostgreSQL, then the privacy rule for this viewer, on every read."""
        # The ticket is taken before PostgreSQL is read: a change committed in
        # between makes the store below refuse what this read found.
        cached = await self.profiles.read(user_id)
        found = cached.profile
        async with self.units(transaction=False) as uow:
            if viewer is not None:
                await _hold(uow, viewer)
            if found is None:
                found = await uow.users.load_profile(user_id)
                if found is None:
                    raise NotFound(NO_SUCH_USER)
            # Connections are read from PostgreSQL on every read, never cached: an
            # accepted request shows a private profile at once, with nothing to drop.
            connected = (
                viewer is not None
                and viewer != user_id
                and found.visibility != "public"
                and await uow.social.are_connected(viewer, user_id)
            )
        if cached.profile is None:
            await self.profiles.store(found, cached.ticket)
        return profile_dto(found, viewer, connected)

    async def update_profile(
        self, me: uuid.UUID, changes: dict[str, Any], correlation: str
    ) -> ProfileDTO:
        if "full_name" in changes:
            changes["full_name"] = _checked(v.check_full_name, changes["full_name"])
        _checked(v.check_text_length, changes.get("headline"), "headline", "Headline", TEXT_LIMIT)
        _checked(v.check_text_length, changes.get("location"), "location", "Location", TEXT_LIMIT)
        async with self.profiles.changing(me), self.units() as uow:
            await _hold(uow, me)
            await uow.users.update_profile(me, changes)
            await self._profile_changed(uow, me, correlation)
        return await self.profile(me, me)

    async def add_work_experience(
        self,
        me: uuid.UUID,
        company: str,
        title: str,
        start: date | None,
        end: date | None,
        correlation: str,
    ) -> WorkExperience:
        _checked(v.check_text_length, company, "companyName", "Company name", TEXT_LIMIT)
        _checked(v.check_text_length, title, "title", "Title", TEXT_LIMIT)
        _checked(v.check_date_range, start, end)
        async with self.profiles.changing(me), self.units() as uow:
            await _hold(uow, me)
            row = await uow.users.add_work_experience(me, company, title, start, end)
            await self._profile_changed(uow, me, correlation)
        return row

    async def add_education(
        self,
        me: uuid.UUID,
        school: str,
        degree: str | None,
        start: date | None,
        end: date | None,
        correlation: str,
    ) -> Education:
        _checked(v.check_text_length, school, "schoolName", "School name", TEXT_LIMIT)
        _checked(v.check_text_length, degree, "degree", "Degree", TEXT_LIMIT)
        _checked(v.check_date_range, start, end)
        async with self.profiles.changing(me), self.units() as uow:
            await _hold(uow, me)
            row = await uow.users.add_education(me, school, degree, start, end)
            await self._profile_changed(uow, me, correlation)
        return row

    async def add_skill(self, me: uuid.UUID, name: str, correlation: str) -> Skill:
        _checked(v.check_text_length, name, "skillName", "Skill name", TEXT_LIMIT)
        if not name.strip():
            raise BadRequest(SKILL_NAME_REQUIRED, "skillName")
        async with self.profiles.changing(me), self.units() as uow:
            await _hold(uow, me)
            skill = await uow.users.add_skill(me, name.strip())
            await self._profile_changed(uow, me, correlation)
        return skill

    async def remove_skill(self, me: uuid.UUID, skill_id: uuid.UUID, correlation: str) -> bool:
        async with self.profiles.changing(me), self.units() as uow:
            await _hold(uow, me)
            owner = await uow.users.skill_owner(skill_id)
            if owner is None:
                raise NotFound(NO_SUCH_SKILL)
            if owner != me:
                raise Forbidden(NOT_YOUR_DATA)
            await uow.users.remove_skill(skill_id)
            await self._profile_changed(uow, me, correlation)
        return True

    async def _live(self, me: uuid.UUID) -> None:
        """`_hold` for the reads that need no unit of their own."""
        async with self.units(transaction=False) as uow:
            await _hold(uow, me)

    async def _profile_changed(self, uow: UnitOfWork, user_id: uuid.UUID, correlation: str) -> None:
        version = await uow.users.profile_version(user_id)
        payload = UserProfileUpdated(user_id=user_id, updated_at=datetime.now(UTC), version=version)
        await uow.emit(payload, user_id, correlation)

    # -- connections and messages ----------------------------------------------

    async def request_connection(
        self, me: uuid.UUID, user_id: uuid.UUID, correlation: str
    ) -> ConnectionRow:
        if me == user_id:
            raise BadRequest(v.SELF_CONNECTION, "userId")
        async with self.units() as uow:
            await _hold(uow, me)
            if not await uow.social.user_exists(user_id):
                raise NotFound(NO_SUCH_USER)
            # The database holds one live relationship per pair (docs/api-abuse.md):
            # its answer, not an earlier read, says which one the pair already has.
            try:
                row = await uow.social.request_connection(me, user_id)
            except PendingRequestExists:
                raise BadRequest(v.CONNECTION_PENDING, "userId") from None
            except AlreadyConnected:
                raise BadRequest(v.ALREADY_CONNECTED, "userId") from None
            payload = ConnectionRequested(
                connection_id=row.id,
                requester_id=me,
                addressee_id=user_id,
                created_at=row.created_at,
            )
            await uow.emit(payload, me, correlation)
        return row

    async def respond_to_connection(
        self, me: uuid.UUID, connection_id: uuid.UUID, accept: bool, correlation: str
    ) -> ConnectionRow:
        async with self.units() as uow:
            await _hold(uow, me)
            found = await uow.social.connection_for_update(connection_id)
            if found is None:
                raise NotFound(NO_SUCH_CONNECTION_REQUEST)
            if found.addressee_id != me:
                raise Forbidden(ONLY_ADDRESSEE)
            if found.status != "pending":
                raise BadRequest(NOT_PENDING, "connectionId")
            row = await uow.social.respond(connection_id, accept)
            if accept:
                payload = ConnectionAccepted(
                    connection_id=row.id,
                    requester_id=row.requester_id,
                    addressee_id=row.addressee_id,
                    accepted_at=row.responded_at or datetime.now(UTC),
                )
                await uow.emit(payload, row.requester_id, correlation)
        return row

    async def send_message(self, me: uuid.UUID, recipient: uuid.UUID, body: str) -> MessageRow:
        _checked(v.check_message_body, body)
        async with self.units() as uow:
            await _hold(uow, me)
            if not await uow.social.are_connected(me, recipient):
                raise Forbidden(ONLY_CONNECTIONS)
            return await uow.social.send_message(me, recipient, body)

    async def messages(self, me: uuid.UUID, other: uuid.UUID) -> list[MessageRow]:
        async with self.units(transaction=False) as uow:
            await _hold(uow, me)
            if not await uow.social.are_connected(me, other):
                raise Forbidden(ONLY_CONNECTIONS)
            return await uow.social.messages_between(me, other)

    # -- posts, comments, feed -------------------------------------------------

    async def create_post(
        self, me: uuid.UUID, text: str, correlation: str
    ) -> tuple[uuid.UUID, datetime]:
        _checked(v.check_post_text, text)
        async with self.units() as uow:
            await _hold(uow, me)
            post_id, created = await uow.posts.create_post(me, text)
            payload = PostCreated(post_id=post_id, author_id=me, created_at=created)
            await uow.emit(payload, me, correlation)
        return post_id, created

    async def create_comment(
        self, me: uuid.UUID, post_id: uuid.UUID, text: str, correlation: str
    ) -> tuple[uuid.UUID, datetime]:
        _checked(v.check_comment_text, text)
        async with self.units() as uow:
            await _hold(uow, me)
            author = await uow.posts.post_author(post_id)
            if author is None:
                raise NotFound(NO_SUCH_POST)
            # Comments come from the author's circle (docs/api-abuse.md): the author
            # and the author's accepted connections, the people the post reached.
            if author != me and not await uow.social.are_connected(me, author):
                raise Forbidden(ONLY_CONNECTIONS_COMMENT)
            comment_id, created = await uow.posts.create_comment(post_id, me, text)
            payload = CommentCreated(
                comment_id=comment_id,
                post_id=post_id,
                author_id=me,
                post_author_id=author,
                created_at=created,
            )
            await uow.emit(payload, post_id, correlation)
        return comment_id, created

    async def feed(self, me: uuid.UUID, first: int, after: str | None) -> FeedPage:
        first = max(1, min(first, 100))
        await self._live(me)
        key = feed_key(me)
        start = 0
        if after is not None:
            position = await self.redis.lpos(key, str(_decode_cursor(after)))
            if position is None:
                return FeedPage([], None)
            start = int(position) + 1
        end = min(start + first, self.feed_max_length)
        if start >= end:
            return FeedPage([], None)
        raw = await self.redis.lrange(key, start, end - 1)
        ids = [uuid.UUID(x.decode() if isinstance(x, bytes) else x) for x in raw]
        async with self.units(transaction=False) as uow:
            found = await uow.posts.hydrate_posts(ids)
        more = len(ids) == first and end < self.feed_max_length
        cursor = _encode_cursor(ids[-1]) if ids and more else None
        return FeedPage([feed_item_dto(p) for p in found], cursor)

    # -- search and notifications -----------------------------------------------

    async def search_users(
        self,
        me: uuid.UUID,
        text: str,
        skills: list[str],
        companies: list[str],
        first: int,
    ) -> list[SearchHitDTO]:
        await self._live(me)
        if self.search is None:
            return []
        hits = await self.search.search_people(text, skills, companies, max(1, min(first, 100)))
        # The index never holds a private headline; refuse to show one even if it did.
        return [
            SearchHitDTO(
                h.user_id,
                h.full_name,
                h.headline if h.visibility == "public" or h.user_id == me else None,
            )
            for h in hits
        ]

    async def notifications(self, me: uuid.UUID, first: int) -> list[notes.NotificationRow]:
        async with self.units(transaction=False) as uow:
            await _hold(uow, me)
            return await uow.notifications.list_notifications(me, max(1, min(first, 100)))

    async def unread_count(self, me: uuid.UUID) -> int:
        await self._live(me)
        return await self.counters.unread(me)

    async def mark_notifications_read(self, me: uuid.UUID) -> int:
        async with self.units(transaction=False) as uow:
            await _hold(uow, me)
            still_unread = await uow.notifications.mark_all_read(me)
        await self.counters.reset(me, still_unread)
        return still_unread


async def _hold(uow: UnitOfWork, me: uuid.UUID) -> None:
    """Refuse a token whose account is gone (401); in a transaction, keep the account
    until the unit ends, so a deletion cannot leave the unit's rows without their owner."""
    if not await uow.users.hold_account(me):
        raise Unauthenticated(ACCOUNT_GONE)


def _checked(check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except v.ValidationFailed as exc:
        raise BadRequest.from_validation(exc) from None


def _encode_cursor(post_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(post_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise BadRequest(BAD_CURSOR, "after") from None
