"""The API services' rules over an in-memory unit of work: no PostgreSQL, no Redis."""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
from argon2 import PasswordHasher
from prometheus_client import REGISTRY

from api.auth import Passwords, Tokens
from api.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from api.profile_cache import ProfileChangesPaused
from api.ratelimit import SignInGuard
from api.services import Services
from contracts import validation as v
from contracts.api_messages import (
    ACCOUNT_GONE,
    BAD_CREDENTIALS,
    NOT_PENDING,
    NOT_YOUR_DATA,
    ONLY_ADDRESSEE,
    ONLY_CONNECTIONS,
    ONLY_CONNECTIONS_COMMENT,
    PROFILE_CHANGES_PAUSED,
)
from contracts.events import (
    CommentCreated,
    ConnectionAccepted,
    ConnectionRequested,
    PostCreated,
    UserProfileUpdated,
)
from tests.api_fakes import (
    PROFILE_CHANGES,
    FakeProfileCache,
    FakeRateLimiter,
    FakeUnitsOfWork,
    FakeUnreadCounters,
    change_profile,
)

CORRELATION = "corr-1"
GOOD_PASSWORD = "Correct-horse-1"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    # The cheapest argon2 parameters: these tests check rules, not hashing cost.
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def units() -> FakeUnitsOfWork:
    return FakeUnitsOfWork()


@pytest.fixture
def profiles(units: FakeUnitsOfWork) -> FakeProfileCache:
    return FakeProfileCache(units)


@pytest.fixture
def services(units: FakeUnitsOfWork, passwords: Passwords, profiles: FakeProfileCache) -> Services:
    return Services(
        units,
        None,
        None,
        FakeUnreadCounters(),
        passwords,
        Tokens("test-secret-" + "x" * 40, 3600),
        today=lambda: date(2026, 1, 1),
        guard=SignInGuard(FakeRateLimiter()),
        profiles=profiles,
    )


async def connect(services: Services, a: uuid.UUID, b: uuid.UUID) -> None:
    request = await services.request_connection(a, b, CORRELATION)
    await services.respond_to_connection(b, request.id, True, CORRELATION)


# -- connections ------------------------------------------------------------------


async def test_you_cannot_connect_to_yourself(services: Services, units: FakeUnitsOfWork) -> None:
    # GIVEN a user
    me = units.add_user()
    # WHEN she asks to connect to herself THEN it is refused, naming the field
    with pytest.raises(BadRequest) as raised:
        await services.request_connection(me, me, CORRELATION)
    assert (raised.value.message, raised.value.field) == (v.SELF_CONNECTION, "userId")
    # AND no unit of work was even opened
    assert units.opened == []


async def test_a_request_writes_connection_requested_in_its_unit(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN two users
    a, b = units.add_user(), units.add_user("Bob")
    # WHEN A asks B
    row = await services.request_connection(a, b, CORRELATION)
    # THEN one transaction wrote the pending row and its event, keyed by the requester
    [unit] = units.writers()
    assert unit.transaction and unit.committed and unit.writes == ["request_connection"]
    [event] = unit.events
    assert isinstance(event.payload, ConnectionRequested) and event.correlation_id == CORRELATION
    assert (event.payload.connection_id, event.payload.requester_id) == (row.id, a)
    assert units.tables.outbox[0][1] == a and row.status == "pending"


async def test_one_relationship_per_pair_whatever_the_order_of_requests(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's pending request to B
    a, b = units.add_user(), units.add_user("Bob")
    request = await services.request_connection(a, b, CORRELATION)
    # WHEN either asks again THEN a request is already pending
    for me, other in ((a, b), (b, a)):
        with pytest.raises(BadRequest) as raised:
            await services.request_connection(me, other, CORRELATION)
        assert raised.value.message == v.CONNECTION_PENDING
    # AND once B accepts, either asking again is told they are connected
    await services.respond_to_connection(b, request.id, True, CORRELATION)
    for me, other in ((a, b), (b, a)):
        with pytest.raises(BadRequest) as raised:
            await services.request_connection(me, other, CORRELATION)
        assert raised.value.message == v.ALREADY_CONNECTED
    # AND only the first request and the acceptance became events
    assert [e.event_type for e in units.events] == ["ConnectionRequested", "ConnectionAccepted"]
    assert len(units.tables.connections) == 1


async def test_a_request_to_an_unknown_user_is_not_found(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(NotFound, match=re.escape("No such user.")):
        await services.request_connection(units.add_user(), uuid.uuid4(), CORRELATION)
    assert units.events == [] and units.tables.connections == {}


@pytest.mark.parametrize("accept", [True, False], ids=["accept", "decline"])
async def test_only_the_addressee_may_respond(
    services: Services, units: FakeUnitsOfWork, accept: bool
) -> None:
    # GIVEN A's pending request to B, and a stranger
    a, b, stranger = units.add_user(), units.add_user("Bob"), units.add_user("Eve")
    request = await services.request_connection(a, b, CORRELATION)
    # WHEN the requester or the stranger responds THEN it is forbidden
    for me in (a, stranger):
        with pytest.raises(Forbidden) as raised:
            await services.respond_to_connection(me, request.id, accept, CORRELATION)
        assert raised.value.message == ONLY_ADDRESSEE
    # AND the request is still pending, with no event beyond the request's
    assert units.tables.connections[request.id].status == "pending"
    assert [e.event_type for e in units.events] == ["ConnectionRequested"]


async def test_accepting_writes_connection_accepted_in_the_same_unit(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's pending request to B
    a, b = units.add_user(), units.add_user("Bob")
    request = await services.request_connection(a, b, CORRELATION)
    # WHEN B accepts
    row = await services.respond_to_connection(b, request.id, True, CORRELATION)
    # THEN the status change and ConnectionAccepted were committed by one transaction
    unit = units.writers()[-1]
    assert unit.transaction and unit.committed and unit.writes == ["respond"]
    [event] = unit.events
    assert isinstance(event.payload, ConnectionAccepted)
    assert (event.payload.requester_id, event.payload.addressee_id) == (a, b)
    assert row.status == "accepted" and units.tables.outbox[-1][1] == a


async def test_declining_writes_no_event_and_a_second_answer_is_refused(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's request to B, declined
    a, b = units.add_user(), units.add_user("Bob")
    request = await services.request_connection(a, b, CORRELATION)
    row = await services.respond_to_connection(b, request.id, False, CORRELATION)
    # THEN it is declined and no event says so
    assert row.status == "declined"
    assert [e.event_type for e in units.events] == ["ConnectionRequested"]
    # AND answering again is refused: it is no longer pending
    with pytest.raises(BadRequest) as raised:
        await services.respond_to_connection(b, request.id, True, CORRELATION)
    assert (raised.value.message, raised.value.field) == (NOT_PENDING, "connectionId")


async def test_responding_to_an_unknown_request_is_not_found(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(NotFound, match=re.escape("No such connection request.")):
        await services.respond_to_connection(units.add_user(), uuid.uuid4(), True, CORRELATION)


# -- messages ---------------------------------------------------------------------


async def test_only_connections_can_message_each_other(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN two users not connected
    a, b = units.add_user(), units.add_user("Bob")
    # WHEN A messages B or reads their messages THEN both are forbidden
    with pytest.raises(Forbidden) as raised:
        await services.send_message(a, b, "hello")
    assert raised.value.message == ONLY_CONNECTIONS
    with pytest.raises(Forbidden):
        await services.messages(a, b)
    # AND once connected, B reads what A sent
    await connect(services, a, b)
    await services.send_message(a, b, "hello")
    assert [m.body for m in await services.messages(b, a)] == ["hello"]


async def test_an_invalid_message_body_is_refused_before_any_unit(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(BadRequest) as raised:
        await services.send_message(units.add_user(), units.add_user(), "   ")
    assert (raised.value.message, raised.value.field) == (v.MESSAGE_BODY_INVALID, "body")
    assert units.opened == []


# -- posts and comments -------------------------------------------------------------


async def test_a_post_writes_post_created_in_its_unit(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN an author
    me = units.add_user()
    # WHEN she posts
    post_id, created = await services.create_post(me, "Hello, world", CORRELATION)
    # THEN one transaction wrote the post and PostCreated, keyed by the author
    [unit] = units.writers()
    assert unit.transaction and unit.committed and unit.writes == ["create_post"]
    [event] = unit.events
    assert event.payload == PostCreated(post_id=post_id, author_id=me, created_at=created)
    assert units.tables.outbox[0][1] == me


async def test_an_empty_post_is_refused_and_nothing_is_written(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(BadRequest) as raised:
        await services.create_post(units.add_user(), "  ", CORRELATION)
    assert (raised.value.message, raised.value.field) == (v.POST_TEXT_REQUIRED, "textContent")
    assert units.opened == [] and units.tables.posts == {}


async def test_a_comment_writes_comment_created_naming_the_post_author(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's post and A's connection B
    a, b = units.add_user(), units.add_user("Bob")
    await connect(services, a, b)
    post_id, _ = await services.create_post(a, "Hello", CORRELATION)
    # WHEN B comments
    comment_id, _ = await services.create_comment(b, post_id, "Hi!", CORRELATION)
    # THEN the comment and CommentCreated commit together, keyed by the post
    unit = units.writers()[-1]
    assert unit.transaction and unit.committed and unit.writes == ["create_comment"]
    [event] = unit.events
    assert isinstance(event.payload, CommentCreated)
    assert (event.payload.comment_id, event.payload.post_author_id) == (comment_id, a)
    assert units.tables.outbox[-1][1] == post_id


async def test_a_comment_on_an_unknown_post_is_not_found_and_writes_nothing(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(NotFound, match=re.escape("No such post.")):
        await services.create_comment(units.add_user(), uuid.uuid4(), "Hi!", CORRELATION)
    assert units.tables.comments == {} and units.events == []


async def test_only_the_author_and_the_authors_connections_may_comment(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's post, A's connection B and a stranger C
    a, b, c = units.add_user(), units.add_user("Bob"), units.add_user("Cy")
    await connect(services, a, b)
    post_id, _ = await services.create_post(a, "Hello", CORRELATION)
    # WHEN the stranger comments THEN it is forbidden and nothing is written
    with pytest.raises(Forbidden) as raised:
        await services.create_comment(c, post_id, "Hi!", CORRELATION)
    assert raised.value.message == ONLY_CONNECTIONS_COMMENT
    assert units.tables.comments == {}
    # AND a pending request is not enough either
    await services.request_connection(c, a, CORRELATION)
    with pytest.raises(Forbidden):
        await services.create_comment(c, post_id, "Hi!", CORRELATION)
    # AND the author and the connection may
    await services.create_comment(a, post_id, "Mine", CORRELATION)
    await services.create_comment(b, post_id, "Yours", CORRELATION)
    assert sorted(text for _, _, text in units.tables.comments.values()) == ["Mine", "Yours"]


async def test_a_token_of_a_deleted_account_is_refused_and_writes_nothing(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN a user whose account was deleted after the token was issued
    gone, other = units.add_user(), units.add_user("Bob")
    del units.tables.accounts[gone]
    # WHEN the token's user reads or writes THEN each answer is 401 and nothing is written
    calls = [
        services.create_post(gone, "Hello", CORRELATION),
        services.request_connection(gone, other, CORRELATION),
        services.add_skill(gone, "Go", CORRELATION),
        services.feed(gone, 10, None),
        services.notifications(gone, 10),
        services.unread_count(gone),
        services.profile(gone, other),
    ]
    for call in calls:
        with pytest.raises(Unauthenticated, match=re.escape(ACCOUNT_GONE)):
            await call
    assert units.writers() == [] and units.events == []


# -- profiles ---------------------------------------------------------------------


async def test_private_profile_fields_are_hidden_from_non_connections(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN a private profile with a headline, its owner's connection and a stranger
    owner = units.add_user(headline="Engineer", private=True)
    friend, stranger = units.add_user("Bob"), units.add_user("Eve")
    await connect(services, owner, friend)
    # WHEN each looks at it
    seen_by_stranger = await services.profile(stranger, owner)
    seen_anonymously = await services.profile(None, owner)
    seen_by_friend = await services.profile(friend, owner)
    seen_by_owner = await services.profile(owner, owner)
    # THEN strangers see the name but not the headline or location; the others see all
    for dto in (seen_by_stranger, seen_anonymously):
        assert dto.full_name == "Ada Lovelace" and (dto.headline, dto.location) == (None, None)
    for dto in (seen_by_friend, seen_by_owner):
        assert (dto.headline, dto.location) == ("Engineer", "London")
    assert seen_by_owner.is_own_profile and not seen_by_friend.is_own_profile


async def test_a_public_profile_is_shown_in_full_to_anyone(
    services: Services, units: FakeUnitsOfWork
) -> None:
    owner = units.add_user(headline="Engineer")
    assert (await services.profile(units.add_user(), owner)).headline == "Engineer"


async def test_an_unknown_profile_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound, match=re.escape("No such user.")):
        await services.profile(None, uuid.uuid4())


async def test_a_profile_change_writes_user_profile_updated_with_its_version(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN a user at profile version 1
    me = units.add_user()
    # WHEN she changes her headline
    dto = await services.update_profile(me, {"headline": "Engineer"}, CORRELATION)
    # THEN the change and UserProfileUpdated, with the new version, commit together
    [unit] = units.writers()
    assert unit.transaction and unit.committed
    [event] = unit.events
    assert isinstance(event.payload, UserProfileUpdated)
    assert (event.payload.user_id, event.payload.version) == (me, 2)
    assert dto.headline == "Engineer"


async def test_an_over_long_headline_is_refused_with_its_limit(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(BadRequest) as raised:
        await services.update_profile(units.add_user(), {"headline": "x" * 201}, CORRELATION)
    expected = v.TEXT_FIELD_TOO_LONG.format(field="Headline", limit=200)
    assert (raised.value.message, raised.value.field) == (expected, "headline")
    assert units.opened == []


async def test_work_experience_ending_before_it_starts_is_refused(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(BadRequest) as raised:
        await services.add_work_experience(
            units.add_user(), "Acme", "CTO", date(2020, 1, 1), date(2019, 1, 1), CORRELATION
        )
    assert (raised.value.message, raised.value.field) == (v.END_BEFORE_START, "endDate")


async def test_a_blank_skill_name_is_refused(services: Services, units: FakeUnitsOfWork) -> None:
    with pytest.raises(BadRequest, match=re.escape("Skill name cannot be empty.")):
        await services.add_skill(units.add_user(), "   ", CORRELATION)
    assert units.opened == []


async def test_you_can_remove_only_your_own_skill(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN A's skill
    a, b = units.add_user(), units.add_user("Bob")
    skill = await services.add_skill(a, " Python ", CORRELATION)
    assert skill.skill_name == "Python"
    # WHEN B removes it THEN it is forbidden, the skill stays and no event is written
    with pytest.raises(Forbidden) as raised:
        await services.remove_skill(b, skill.id, CORRELATION)
    assert raised.value.message == NOT_YOUR_DATA
    assert units.tables.profiles[a].skills == (skill,) and len(units.events) == 1
    # AND an unknown skill is not found
    with pytest.raises(NotFound, match=re.escape("No such skill.")):
        await services.remove_skill(a, uuid.uuid4(), CORRELATION)
    # AND A removes her own, writing UserProfileUpdated
    assert await services.remove_skill(a, skill.id, CORRELATION) is True
    assert units.tables.profiles[a].skills == () and len(units.events) == 2


# -- the profile cache --------------------------------------------------------------


@pytest.mark.parametrize("kind", PROFILE_CHANGES)
async def test_each_profile_change_drops_the_cached_profile_around_its_transaction(
    services: Services, units: FakeUnitsOfWork, profiles: FakeProfileCache, kind: str
) -> None:
    # GIVEN a user with a skill whose profile is cached
    me = units.add_user(headline="Before")
    skill = await services.add_skill(me, "Rust", CORRELATION)
    await services.profile(me, me)
    assert profiles.entries[me].headline == "Before"
    # WHEN she makes the change
    profiles.calls.clear()
    opened = len(units.opened)
    await change_profile(services, me, kind, skill.id)
    # THEN the entry was dropped before the transaction opened and again after it
    # committed, and her next read shows the change
    unit = units.opened[opened]
    assert unit.transaction and unit.committed
    assert [(c[0], c[2]) for c in profiles.calls[:2]] == [
        ("begin_change", opened),
        ("end_change", opened + 1),
    ]
    mine = await services.profile(me, me)
    seen = {
        "profile": mine.headline == "Changed",
        "work": [w.company_name for w in mine.work_experience] == ["Acme"],
        "education": [e.school_name for e in mine.education] == ["MIT"],
        "skill": [s.skill_name for s in mine.skills] == ["Rust", "Go"],
        "remove skill": mine.skills == (),
    }
    assert seen[kind]


async def test_a_cached_private_profile_is_still_hidden_from_strangers(
    services: Services, units: FakeUnitsOfWork, profiles: FakeProfileCache
) -> None:
    # GIVEN a private profile its owner's read has cached in full
    owner = units.add_user(headline="Engineer", private=True)
    friend, stranger = units.add_user("Bob"), units.add_user("Eve")
    await connect(services, owner, friend)
    await services.profile(owner, owner)
    assert profiles.entries[owner].headline == "Engineer"
    # WHEN a stranger, nobody and a connection read it from the cache
    seen_by_stranger = await services.profile(stranger, owner)
    seen_anonymously = await services.profile(None, owner)
    seen_by_friend = await services.profile(friend, owner)
    # THEN the rule is applied on each read: only the connection sees the headline
    assert (seen_by_stranger.headline, seen_by_stranger.work_experience) == (None, ())
    assert (seen_anonymously.headline, seen_anonymously.location) == (None, None)
    assert seen_by_friend.headline == "Engineer"
    assert [c[0] for c in profiles.calls[-3:]] == ["read", "read", "read"]


async def test_a_failing_cache_serves_profiles_from_the_tables(
    services: Services, units: FakeUnitsOfWork, profiles: FakeProfileCache
) -> None:
    # GIVEN a profile, and a cache whose Redis is down
    owner = units.add_user(headline="Engineer")
    profiles.down = True
    before = _errors("read")
    # WHEN it is read THEN PostgreSQL's profile is served, and the failure is counted
    assert (await services.profile(None, owner)).headline == "Engineer"
    assert _errors("read") == before + 1
    assert profiles.entries == {}


async def test_a_change_is_refused_when_the_cache_cannot_be_told_of_it(
    services: Services, units: FakeUnitsOfWork, profiles: FakeProfileCache
) -> None:
    # GIVEN a user, and a cache whose Redis is down
    me = units.add_user(headline="Before")
    profiles.down = True
    # WHEN she changes her profile THEN it is refused with 503 before any transaction
    with pytest.raises(ProfileChangesPaused) as raised:
        await services.update_profile(me, {"headline": "After"}, CORRELATION)
    assert (raised.value.status, raised.value.message) == (503, PROFILE_CHANGES_PAUSED)
    assert units.opened == [] and units.events == []
    assert units.tables.profiles[me].headline == "Before"


def _errors(operation: str) -> float:
    value = REGISTRY.get_sample_value(
        "socialpipe_profile_cache_errors_total", {"operation": operation}
    )
    return value or 0.0


# -- accounts ---------------------------------------------------------------------


async def test_registering_writes_the_account_and_user_profile_updated_together(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # WHEN someone registers
    _, user_id = await services.register(
        " Ada@Example.com ", GOOD_PASSWORD, date(1990, 1, 1), " Ada ", CORRELATION
    )
    # THEN the normalised account and UserProfileUpdated commit in one transaction
    [unit] = units.writers()
    assert unit.transaction and unit.committed and unit.writes == ["create_user"]
    [event] = unit.events
    assert isinstance(event.payload, UserProfileUpdated) and event.payload.user_id == user_id
    assert units.tables.accounts[user_id].email == "ada@example.com"
    assert units.tables.profiles[user_id].full_name == "Ada"


async def test_a_taken_email_is_refused_and_nothing_is_written(
    services: Services, units: FakeUnitsOfWork
) -> None:
    # GIVEN a registered account
    await services.register("ada@example.com", GOOD_PASSWORD, date(1990, 1, 1), "Ada", "c")
    # WHEN the same email registers again THEN it is refused on the email field
    with pytest.raises(BadRequest) as raised:
        await services.register("ada@example.com", GOOD_PASSWORD, date(1991, 1, 1), "Ad", "c")
    assert (raised.value.message, raised.value.field) == (v.EMAIL_TAKEN, "email")
    assert len(units.tables.accounts) == 1 and len(units.events) == 1


async def test_registering_under_sixteen_is_refused(
    services: Services, units: FakeUnitsOfWork
) -> None:
    with pytest.raises(BadRequest) as raised:
        await services.register("kid@example.com", GOOD_PASSWORD, date(2015, 1, 1), "Kid", "c")
    assert (raised.value.message, raised.value.field) == (v.TOO_YOUNG, "dateOfBirth")
    assert units.opened == []


async def test_login_with_a_wrong_password_or_unknown_email_gives_one_answer(
    services: Services,
) -> None:
    # GIVEN a registered account
    _, user_id = await services.register(
        "ada@example.com", GOOD_PASSWORD, date(1990, 1, 1), "Ada", "c"
    )
    # WHEN logging in with a wrong password or an unknown email THEN the same error
    for email, password in (("ada@example.com", "Wrong-horse-11"), ("x@example.com", "x")):
        with pytest.raises(Unauthenticated) as raised:
            await services.login(email, password)
        assert raised.value.message == BAD_CREDENTIALS
    # AND the right password, in any email case, logs in
    assert (await services.login(" ADA@example.com", GOOD_PASSWORD))[1] == user_id
