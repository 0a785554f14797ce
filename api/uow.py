"""The API's unit of work: the repositories of one connection, in one transaction.

`Services` opens a unit per request (`async with units() as uow:`), reads and
writes through its repositories, and emits events with `uow.emit`: the outbox
row is written on the same connection, so the event commits exactly when the
change does (`store/outbox.py`). Leaving the block commits; an exception rolls
everything back. `units(transaction=False)` gives the same repositories over a
plain connection, for reads and single statements.

The PostgreSQL implementation delegates to the `store/` modules; unit tests of
the services' rules use the in-memory one in `tests/api_fakes.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from typing import Any, Protocol

from contracts import tracing
from contracts.events import Payload, new_envelope
from store import notifications as notes
from store import outbox, posts, social, users
from store.notifications import NotificationRow
from store.social import ConnectionRow, MessageRow
from transforms.entities import Education, FeedPost, Profile, Skill, UserAccount, WorkExperience


class UserRepository(Protocol):
    """Accounts and profiles (`store/users.py`)."""

    async def create_user(
        self, *, email: str, password_hash: str, date_of_birth: date, full_name: str
    ) -> uuid.UUID:
        """Raises `store.users.EmailTaken` when another account uses `email`."""
        ...

    async def account_by_email(self, email: str) -> UserAccount | None: ...
    async def account(self, user_id: uuid.UUID) -> UserAccount | None: ...

    async def hold_account(self, user_id: uuid.UUID) -> bool:
        """Whether the account exists; in a transaction it also stays until the unit ends."""
        ...

    async def load_profile(self, user_id: uuid.UUID) -> Profile | None: ...
    async def update_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> None: ...
    async def profile_version(self, user_id: uuid.UUID) -> int | None: ...

    async def add_work_experience(
        self,
        user_id: uuid.UUID,
        company: str,
        title: str,
        start: date | None,
        end: date | None,
    ) -> WorkExperience: ...

    async def add_education(
        self,
        user_id: uuid.UUID,
        school: str,
        degree: str | None,
        start: date | None,
        end: date | None,
    ) -> Education: ...

    async def add_skill(self, user_id: uuid.UUID, name: str) -> Skill: ...
    async def skill_owner(self, skill_id: uuid.UUID) -> uuid.UUID | None: ...
    async def remove_skill(self, skill_id: uuid.UUID) -> None: ...


class SocialRepository(Protocol):
    """Connections and direct messages (`store/social.py`)."""

    async def user_exists(self, user_id: uuid.UUID) -> bool: ...
    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool: ...

    async def request_connection(self, requester: uuid.UUID, addressee: uuid.UUID) -> ConnectionRow:
        """Raises `store.social.PendingRequestExists` when a request is pending in either
        direction, `store.social.AlreadyConnected` when the pair is connected."""
        ...

    async def connection_for_update(self, connection_id: uuid.UUID) -> ConnectionRow | None:
        """The request, locked until the unit ends."""
        ...

    async def respond(self, connection_id: uuid.UUID, accept: bool) -> ConnectionRow: ...

    async def send_message(
        self, sender: uuid.UUID, recipient: uuid.UUID, body: str
    ) -> MessageRow: ...

    async def messages_between(self, a: uuid.UUID, b: uuid.UUID) -> list[MessageRow]: ...


class PostRepository(Protocol):
    """Posts and comments (`store/posts.py`)."""

    async def create_post(self, author_id: uuid.UUID, text: str) -> tuple[uuid.UUID, datetime]: ...
    async def post_author(self, post_id: uuid.UUID) -> uuid.UUID | None: ...

    async def create_comment(
        self, post_id: uuid.UUID, author_id: uuid.UUID, text: str
    ) -> tuple[uuid.UUID, datetime]: ...

    async def hydrate_posts(self, post_ids: list[uuid.UUID]) -> list[FeedPost]: ...


class NotificationRepository(Protocol):
    """Notification rows as the API reads and marks them (`store/notifications.py`)."""

    async def list_notifications(self, user_id: uuid.UUID, first: int) -> list[NotificationRow]: ...

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        """Returns how many are still unread (normally 0)."""
        ...


class UnitOfWork(Protocol):
    """The repositories of one connection, and the outbox on that same connection."""

    @property
    def users(self) -> UserRepository: ...
    @property
    def social(self) -> SocialRepository: ...
    @property
    def posts(self) -> PostRepository: ...
    @property
    def notifications(self) -> NotificationRepository: ...

    async def emit(self, payload: Payload, key: uuid.UUID, correlation: str) -> None:
        """Write the event of a change to the outbox, to commit with the change."""
        ...


class UnitsOfWork(Protocol):
    """Opens units of work: `async with units() as uow:`."""

    def __call__(self, *, transaction: bool = True) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit over one connection; in one transaction unless `transaction=False`."""
        ...


class PgUnitsOfWork:
    """`UnitsOfWork` over an asyncpg pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @asynccontextmanager
    async def __call__(self, *, transaction: bool = True) -> AsyncIterator[UnitOfWork]:
        async with self._pool.acquire() as conn:
            if not transaction:
                yield PgUnitOfWork(conn)
                return
            async with conn.transaction():
                yield PgUnitOfWork(conn)


class PgUnitOfWork:
    """`UnitOfWork` over one asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self.users = PgUsers(conn)
        self.social = PgSocial(conn)
        self.posts = PgPosts(conn)
        self.notifications = PgNotifications(conn)
        self._conn = conn

    async def emit(self, payload: Payload, key: uuid.UUID, correlation: str) -> None:
        # The envelope carries the outbox write's trace context to the relay (docs/tracing.md).
        with tracing.span("outbox write", correlation=correlation):
            envelope = new_envelope(payload, correlation_id=correlation, trace=tracing.carrier())
            await outbox.enqueue(self._conn, envelope, key)


class PgUsers:
    """`UserRepository` over one connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def create_user(
        self, *, email: str, password_hash: str, date_of_birth: date, full_name: str
    ) -> uuid.UUID:
        return await users.create_user(
            self._conn,
            email=email,
            password_hash=password_hash,
            date_of_birth=date_of_birth,
            full_name=full_name,
        )

    async def account_by_email(self, email: str) -> UserAccount | None:
        return await users.account_by_email(self._conn, email)

    async def account(self, user_id: uuid.UUID) -> UserAccount | None:
        return await users.account(self._conn, user_id)

    async def hold_account(self, user_id: uuid.UUID) -> bool:
        return await users.hold_account(self._conn, user_id)

    async def load_profile(self, user_id: uuid.UUID) -> Profile | None:
        return await users.load_profile(self._conn, user_id)

    async def update_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> None:
        await users.update_profile(self._conn, user_id, changes)

    async def profile_version(self, user_id: uuid.UUID) -> int | None:
        return await users.profile_version(self._conn, user_id)

    async def add_work_experience(
        self,
        user_id: uuid.UUID,
        company: str,
        title: str,
        start: date | None,
        end: date | None,
    ) -> WorkExperience:
        return await users.add_work_experience(self._conn, user_id, company, title, start, end)

    async def add_education(
        self,
        user_id: uuid.UUID,
        school: str,
        degree: str | None,
        start: date | None,
        end: date | None,
    ) -> Education:
        return await users.add_education(self._conn, user_id, school, degree, start, end)

    async def add_skill(self, user_id: uuid.UUID, name: str) -> Skill:
        return await users.add_skill(self._conn, user_id, name)

    async def skill_owner(self, skill_id: uuid.UUID) -> uuid.UUID | None:
        return await users.skill_owner(self._conn, skill_id)

    async def remove_skill(self, skill_id: uuid.UUID) -> None:
        await users.remove_skill(self._conn, skill_id)


class PgSocial:
    """`SocialRepository` over one connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        return await social.user_exists(self._conn, user_id)

    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        return await social.are_connected(self._conn, a, b)

    async def request_connection(self, requester: uuid.UUID, addressee: uuid.UUID) -> ConnectionRow:
        return await social.request_connection(self._conn, requester, addressee)

    async def connection_for_update(self, connection_id: uuid.UUID) -> ConnectionRow | None:
        return await social.connection_for_update(self._conn, connection_id)

    async def respond(self, connection_id: uuid.UUID, accept: bool) -> ConnectionRow:
        return await social.respond(self._conn, connection_id, accept)

    async def send_message(self, sender: uuid.UUID, recipient: uuid.UUID, body: str) -> MessageRow:
        return await social.send_message(self._conn, sender, recipient, body)

    async def messages_between(self, a: uuid.UUID, b: uuid.UUID) -> list[MessageRow]:
        return await social.messages_between(self._conn, a, b)


class PgPosts:
    """`PostRepository` over one connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def create_post(self, author_id: uuid.UUID, text: str) -> tuple[uuid.UUID, datetime]:
        return await posts.create_post(self._conn, author_id, text)

    async def post_author(self, post_id: uuid.UUID) -> uuid.UUID | None:
        return await posts.post_author(self._conn, post_id)

    async def create_comment(
        self, post_id: uuid.UUID, author_id: uuid.UUID, text: str
    ) -> tuple[uuid.UUID, datetime]:
        return await posts.create_comment(self._conn, post_id, author_id, text)

    async def hydrate_posts(self, post_ids: list[uuid.UUID]) -> list[FeedPost]:
        return await posts.hydrate_posts(self._conn, post_ids)


class PgNotifications:
    """`NotificationRepository` over one connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def list_notifications(self, user_id: uuid.UUID, first: int) -> list[NotificationRow]:
        return await notes.list_notifications(self._conn, user_id, first)

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        return await notes.mark_all_read(self._conn, user_id)
