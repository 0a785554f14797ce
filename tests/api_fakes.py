"""An in-memory `api.uow.UnitsOfWork` for unit tests of the API's rules.

It keeps the store's own rules that the services rely on (one live relationship,
pending or accepted, per pair in either direction; a taken email) and a
transaction's: a unit that raises leaves no row and no outbox event behind.
Every unit opened is recorded with what it wrote and emitted, so a test can say
"in the same unit".
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from api.ports import CachedProfile
from api.ratelimit import Decision, Rate, gcra, gcra_refund
from contracts.errors import DependencyDown
from contracts.events import Envelope, Payload, new_envelope
from store.notifications import NotificationRow
from store.social import AlreadyConnected, ConnectionRow, MessageRow, PendingRequestExists
from store.users import EmailTaken
from transforms.entities import Education, FeedPost, Profile, Skill, UserAccount, WorkExperience

if TYPE_CHECKING:
    from api.services import Services


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeTables:
    """The rows a unit of work can see; `outbox` holds the committed events."""

    accounts: dict[uuid.UUID, UserAccount] = field(default_factory=dict)
    profiles: dict[uuid.UUID, Profile] = field(default_factory=dict)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    skill_owners: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    connections: dict[uuid.UUID, ConnectionRow] = field(default_factory=dict)
    messages: list[MessageRow] = field(default_factory=list)
    posts: dict[uuid.UUID, FeedPost] = field(default_factory=dict)
    comments: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=dict)
    notifications: dict[uuid.UUID, list[NotificationRow]] = field(default_factory=dict)
    outbox: list[tuple[Envelope, uuid.UUID]] = field(default_factory=list)


@dataclass
class FakeUnitOfWork:
    """One unit: the repositories (all four are this object) over `tables`."""

    tables: FakeTables
    transaction: bool
    writes: list[str] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    committed: bool = False

    @property
    def users(self) -> FakeUnitOfWork:
        return self

    @property
    def social(self) -> FakeUnitOfWork:
        return self

    @property
    def posts(self) -> FakeUnitOfWork:
        return self

    @property
    def notifications(self) -> FakeUnitOfWork:
        return self

    async def emit(self, payload: Payload, key: uuid.UUID, correlation: str) -> None:
        envelope = new_envelope(payload, correlation_id=correlation)
        self.events.append(envelope)
        self.tables.outbox.append((envelope, key))

    # -- users ------------------------------------------------------------------

    async def create_user(
        self, *, email: str, password_hash: str, date_of_birth: date, full_name: str
    ) -> uuid.UUID:
        if any(a.email == email for a in self.tables.accounts.values()):
            raise EmailTaken(email)
        user_id = uuid.uuid4()
        self.writes.append("create_user")
        self.tables.accounts[user_id] = UserAccount(
            user_id, email, password_hash, None, date_of_birth, _now()
        )
        self.tables.profiles[user_id] = Profile(user_id, full_name, None, None, "public")
        self.tables.versions[user_id] = 1
        return user_id

    async def account_by_email(self, email: str) -> UserAccount | None:
        return next((a for a in self.tables.accounts.values() if a.email == email), None)

    async def account(self, user_id: uuid.UUID) -> UserAccount | None:
        return self.tables.accounts.get(user_id)

    async def hold_account(self, user_id: uuid.UUID) -> bool:
        return user_id in self.tables.accounts

    async def load_profile(self, user_id: uuid.UUID) -> Profile | None:
        return self.tables.profiles.get(user_id)

    async def update_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> None:
        allowed = {"full_name", "headline", "location", "visibility"}
        self._change(user_id, **{k: v for k, v in changes.items() if k in allowed})

    async def profile_version(self, user_id: uuid.UUID) -> int | None:
        return self.tables.versions.get(user_id)

    async def add_work_experience(
        self,
        user_id: uuid.UUID,
        company: str,
        title: str,
        start: date | None,
        end: date | None,
    ) -> WorkExperience:
        row = WorkExperience(uuid.uuid4(), company, title, start, end)
        work = self.tables.profiles[user_id].work_experience
        self._change(user_id, work_experience=(*work, row))
        return row

    async def add_education(
        self,
        user_id: uuid.UUID,
        school: str,
        degree: str | None,
        start: date | None,
        end: date | None,
    ) -> Education:
        row = Education(uuid.uuid4(), school, degree, start, end)
        self._change(user_id, education=(*self.tables.profiles[user_id].education, row))
        return row

    async def add_skill(self, user_id: uuid.UUID, name: str) -> Skill:
        skill = Skill(uuid.uuid4(), name)
        self.tables.skill_owners[skill.id] = user_id
        self._change(user_id, skills=(*self.tables.profiles[user_id].skills, skill))
        return skill

    async def skill_owner(self, skill_id: uuid.UUID) -> uuid.UUID | None:
        return self.tables.skill_owners.get(skill_id)

    async def remove_skill(self, skill_id: uuid.UUID) -> None:
        owner = self.tables.skill_owners.pop(skill_id)
        kept = tuple(s for s in self.tables.profiles[owner].skills if s.id != skill_id)
        self._change(owner, skills=kept)

    def _change(self, user_id: uuid.UUID, **values: Any) -> None:
        """A profile write: the row changes and its version goes up, as the trigger does."""
        self.writes.append("profile")
        self.tables.profiles[user_id] = replace(self.tables.profiles[user_id], **values)
        self.tables.versions[user_id] += 1

    # -- social -----------------------------------------------------------------

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        return user_id in self.tables.accounts

    async def are_connected(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        return any(
            c.status == "accepted" and {c.requester_id, c.addressee_id} == {a, b}
            for c in self.tables.connections.values()
        )

    async def request_connection(self, requester: uuid.UUID, addressee: uuid.UUID) -> ConnectionRow:
        pair = {requester, addressee}
        rows = self.tables.connections.values()
        live = [c.status for c in rows if {c.requester_id, c.addressee_id} == pair]
        if "accepted" in live:
            raise AlreadyConnected()
        if "pending" in live:
            raise PendingRequestExists()
        row = ConnectionRow(uuid.uuid4(), requester, addressee, "pending", _now(), None)
        self.writes.append("request_connection")
        self.tables.connections[row.id] = row
        return row

    async def connection_for_update(self, connection_id: uuid.UUID) -> ConnectionRow | None:
        return self.tables.connections.get(connection_id)

    async def respond(self, connection_id: uuid.UUID, accept: bool) -> ConnectionRow:
        status = "accepted" if accept else "declined"
        row = replace(self.tables.connections[connection_id], status=status, responded_at=_now())
        self.writes.append("respond")
        self.tables.connections[connection_id] = row
        return row

    async def send_message(self, sender: uuid.UUID, recipient: uuid.UUID, body: str) -> MessageRow:
        row = MessageRow(uuid.uuid4(), sender, recipient, body, _now())
        self.writes.append("send_message")
        self.tables.messages.append(row)
        return row

    async def messages_between(self, a: uuid.UUID, b: uuid.UUID) -> list[MessageRow]:
        pair = {a, b}
        found = [m for m in self.tables.messages if {m.sender_id, m.recipient_id} == pair]
        return found[::-1]

    # -- posts ------------------------------------------------------------------

    async def create_post(self, author_id: uuid.UUID, text: str) -> tuple[uuid.UUID, datetime]:
        name = self.tables.profiles[author_id].full_name
        post = FeedPost(uuid.uuid4(), author_id, name, text, _now())
        self.writes.append("create_post")
        self.tables.posts[post.id] = post
        return post.id, post.created_at

    async def post_author(self, post_id: uuid.UUID) -> uuid.UUID | None:
        post = self.tables.posts.get(post_id)
        return None if post is None else post.author_id

    async def create_comment(
        self, post_id: uuid.UUID, author_id: uuid.UUID, text: str
    ) -> tuple[uuid.UUID, datetime]:
        comment_id = uuid.uuid4()
        self.writes.append("create_comment")
        self.tables.comments[comment_id] = (post_id, author_id, text)
        return comment_id, _now()

    async def hydrate_posts(self, post_ids: list[uuid.UUID]) -> list[FeedPost]:
        return [self.tables.posts[i] for i in post_ids if i in self.tables.posts]

    # -- notifications ------------------------------------------------------------

    async def list_notifications(self, user_id: uuid.UUID, first: int) -> list[NotificationRow]:
        return self.tables.notifications.get(user_id, [])[:first]

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        rows = self.tables.notifications.get(user_id, [])
        self.tables.notifications[user_id] = [replace(r, read_at=_now()) for r in rows]
        return 0


class FakeUnitsOfWork:
    """Opens `FakeUnitOfWork`s over one `FakeTables`; `opened` lists them in order."""

    def __init__(self) -> None:
        self.tables = FakeTables()
        self.opened: list[FakeUnitOfWork] = []

    @asynccontextmanager
    async def __call__(self, *, transaction: bool = True) -> AsyncIterator[FakeUnitOfWork]:
        unit = FakeUnitOfWork(self.tables, transaction)
        self.opened.append(unit)
        before = copy.deepcopy(self.tables) if transaction else None
        try:
            yield unit
        except BaseException:
            if before is not None:  # a transaction rolls back; a plain connection does not
                self._restore(before)
            raise
        unit.committed = True

    def add_user(
        self, full_name: str = "Ada Lovelace", *, headline: str | None = None, private: bool = False
    ) -> uuid.UUID:
        """A registered user, put straight into the tables (no unit, no event)."""
        user_id = uuid.uuid4()
        email = f"{user_id.hex[:12]}@example.com"
        self.tables.accounts[user_id] = UserAccount(user_id, email, None, None, None, _now())
        visibility = "private" if private else "public"
        profile = Profile(user_id, full_name, headline, "London", visibility)
        self.tables.profiles[user_id] = profile
        self.tables.versions[user_id] = 1
        return user_id

    def _restore(self, before: FakeTables) -> None:
        for f in fields(FakeTables):
            setattr(self.tables, f.name, getattr(before, f.name))

    @property
    def events(self) -> Sequence[Envelope]:
        """Every committed outbox event, oldest first."""
        return [envelope for envelope, _ in self.tables.outbox]

    def writers(self) -> list[FakeUnitOfWork]:
        """The units that wrote something."""
        return [u for u in self.opened if u.writes or u.events]


class FakeUnreadCounters:
    """An in-memory `api.ports.UnreadCounters`."""

    def __init__(self) -> None:
        self.counts: dict[uuid.UUID, int] = {}

    async def unread(self, user_id: uuid.UUID) -> int:
        return self.counts.get(user_id, 0)

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        self.counts[user_id] = unread


class FakeRateLimiter:
    """An in-memory `api.ratelimit.RateLimiter` on a clock the test moves (`now_ms`)."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000
        self.state: dict[str, int] = {}
        self.taken: list[str] = []

    async def take(self, key: str, rate: Rate) -> Decision:
        decision, self.state[key] = gcra(self.state.get(key), self.now_ms, rate)
        self.taken.append(key)
        return decision

    async def give_back(self, key: str, rate: Rate) -> None:
        left = gcra_refund(self.state.get(key), self.now_ms, rate)
        if left is None:
            self.state.pop(key, None)
        else:
            self.state[key] = left


class FakeProfileCache:
    """An in-memory `api.ports.ProfileCache` with the Redis one's rules: a store is
    refused when the generation moved since its ticket or while a change is in
    flight. `calls` records every call in order (with `units.opened`, a test can
    say "before the transaction"); `down = True` makes every call fail as Redis does.
    """

    def __init__(self, units: FakeUnitsOfWork | None = None) -> None:
        self.entries: dict[uuid.UUID, Profile] = {}
        self.generations: dict[uuid.UUID, int] = {}
        self.writing: dict[uuid.UUID, int] = {}
        self.calls: list[tuple[str, uuid.UUID, int]] = []
        self.down = False
        self._units = units

    def _call(self, name: str, user_id: uuid.UUID) -> None:
        opened = len(self._units.opened) if self._units is not None else 0
        self.calls.append((name, user_id, opened))
        if self.down:
            raise DependencyDown("Redis", f"{name} failed: Connection refused")

    async def read(self, user_id: uuid.UUID) -> CachedProfile:
        self._call("read", user_id)
        ticket = None if self.writing.get(user_id) else str(self.generations.get(user_id, 0))
        return CachedProfile(self.entries.get(user_id), None if ticket is None else ticket.encode())

    async def store(self, profile: Profile, ticket: bytes) -> bool:
        self._call("store", profile.user_id)
        user_id = profile.user_id
        if self.writing.get(user_id) or ticket != str(self.generations.get(user_id, 0)).encode():
            return False
        self.entries[user_id] = profile
        return True

    async def begin_change(self, user_id: uuid.UUID) -> None:
        self._call("begin_change", user_id)
        self._drop(user_id)
        self.writing[user_id] = self.writing.get(user_id, 0) + 1

    async def end_change(self, user_id: uuid.UUID) -> None:
        self._call("end_change", user_id)
        self._drop(user_id)
        self.writing[user_id] = max(0, self.writing.get(user_id, 0) - 1)

    def _drop(self, user_id: uuid.UUID) -> None:
        self.entries.pop(user_id, None)
        self.generations[user_id] = self.generations.get(user_id, 0) + 1


# Every kind of change to a profile the API offers, for tests that take each in turn.
PROFILE_CHANGES = ("profile", "work", "education", "skill", "remove skill")


async def change_profile(services: Services, me: uuid.UUID, kind: str, skill: uuid.UUID) -> None:
    """One change of `kind` (from PROFILE_CHANGES) to `me`'s profile: the headline
    becomes "Changed", or Acme/CTO, MIT/BSc or the skill "Go" is added, or `skill`
    is removed."""
    correlation = "corr-change"
    start = date(2020, 1, 1)
    if kind == "profile":
        await services.update_profile(me, {"headline": "Changed"}, correlation)
    elif kind == "work":
        await services.add_work_experience(me, "Acme", "CTO", start, None, correlation)
    elif kind == "education":
        await services.add_education(me, "MIT", "BSc", start, None, correlation)
    elif kind == "skill":
        await services.add_skill(me, "Go", correlation)
    else:
        await services.remove_skill(me, skill, correlation)
