"""The GraphQL API end to end in-process: operations, validation, auth, privacy, outbox."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import pytest
import redis.asyncio as redis_asyncio
from graphql import introspection_from_schema

from api.app import build_schema
from config.logging import configure_logging
from contracts.keys import feed_key, unread_notifications_key
from tests.integration.api.client import GOOD_PASSWORD, SECRET, Api

REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }"
PROFILE = """query($u: ID!) { profile(userId: $u) { userId fullName headline location
  visibility isOwnProfile workExperience { companyName } education { schoolName }
  skills { skillName } } }"""


def reg_input(**over: str) -> dict[str, str]:
    base = {
        "email": f"{uuid.uuid4().hex[:8]}@example.com",
        "password": GOOD_PASSWORD,
        "fullName": "Grace Hopper",
        "dateOfBirth": "1990-05-05",
    }
    return {**base, **over}


async def bad_request(
    api: Api, query: str, variables: Mapping[str, Any], token: str | None = None
) -> tuple[str, str]:
    status, body = await api.call(query, variables, token)
    assert status == 400, body
    err = body["errors"][0]
    assert err["extensions"]["code"] == "BAD_REQUEST"
    return err["message"], err["extensions"]["field"]


async def test_register_login_and_me_round_trip(api: Api) -> None:
    # GIVEN a registered user
    _, user_id = await api.register("ada@example.com", "Ada Lovelace")
    # WHEN they log in again and ask who they are
    data = await api.ok(
        'mutation($p: String!) { login(email: "ADA@example.com", password: $p)'
        " { token user { id } } }",
        {"p": GOOD_PASSWORD},
    )
    me = await api.ok(
        "{ me { id email profile { fullName isOwnProfile } } }", token=data["login"]["token"]
    )
    # THEN it is the same user, seeing their own profile
    assert data["login"]["user"]["id"] == user_id
    assert me["me"] == {
        "id": user_id,
        "email": "ada@example.com",
        "profile": {"fullName": "Ada Lovelace", "isOwnProfile": True},
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "Please provide a valid email address."),
        ("password", "Short1!", "Password does not meet complexity requirements."),
        ("password", "nouppercase1!", "Password does not meet complexity requirements."),
        ("fullName", "x" * 101, "Full name cannot exceed 100 characters."),
        ("dateOfBirth", "2020-01-01", "You must be at least 16 years old to register."),
    ],
)
async def test_registration_validation_answers_400_with_exact_message_and_field(
    api: Api, field: str, value: str, message: str
) -> None:
    assert await bad_request(api, REGISTER, {"i": reg_input(**{field: value})}) == (message, field)


async def test_registration_stops_at_the_first_failure_in_order(api: Api) -> None:
    variables = {"i": reg_input(email="bad", password="weak", dateOfBirth="2020-01-01")}
    assert (await bad_request(api, REGISTER, variables))[1] == "email"
    variables["i"]["email"] = "ok@example.com"
    assert (await bad_request(api, REGISTER, variables))[1] == "password"


async def test_sixteenth_birthday_today_may_register_and_twelve_char_password_passes(
    api: Api,
) -> None:
    today = datetime.now(UTC).date()
    dob = date(
        today.year - 16, today.month, today.day if (today.month, today.day) != (2, 29) else 28
    )
    await api.ok(
        REGISTER,
        {"i": reg_input(dateOfBirth=dob.isoformat(), password="Aa1!aaaaaaaa", fullName="x" * 100)},
    )


async def test_duplicate_email_is_refused(api: Api) -> None:
    await api.register("twice@example.com")
    message, field = await bad_request(api, REGISTER, {"i": reg_input(email="twice@example.com")})
    assert (message, field) == ("An account with this email address already exists.", "email")


async def test_post_text_limit_is_3000_characters(api: Api) -> None:
    token, _ = await api.register("poster@example.com")
    q = "mutation($t: String!) { createPost(textContent: $t) { id } }"
    await api.ok(q, {"t": "p" * 3000}, token)
    assert await bad_request(api, q, {"t": "p" * 3001}, token) == (
        "Post text cannot exceed 3000 characters.",
        "textContent",
    )


async def test_work_experience_end_before_start_is_refused(api: Api) -> None:
    token, _ = await api.register("worker@example.com")
    q = """mutation($i: WorkExperienceInput!) { addWorkExperience(input: $i) { id } }"""
    i = {"companyName": "Acme", "title": "Eng", "startDate": "2020-01-02", "endDate": "2020-01-01"}
    assert await bad_request(api, q, {"i": i}, token) == (
        "End date cannot be before start date.",
        "endDate",
    )


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Basic abc"])
async def test_missing_or_bad_token_answers_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = await api.client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
    assert r.status_code == 401
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_answers_401(api: Api) -> None:
    _, user_id = await api.register("old@example.com")
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = jwt.encode(
        {"sub": user_id, "iat": past, "exp": past + timedelta(hours=1)}, SECRET, "HS256"
    )
    status, body = await api.call("{ me { id } }", token=expired)
    assert status == 401
    assert body["errors"][0]["message"] == "The bearer token is invalid or has expired."


async def test_another_users_data_answers_403(api: Api) -> None:
    # GIVEN A with a skill, and B a stranger
    a_token, _ = await api.register("a@example.com")
    b_token, b_id = await api.register("b@example.com")
    skill = await api.ok('mutation { addSkill(skillName: "Go") { id } }', token=a_token)
    # WHEN B removes A's skill, or A messages stranger B
    s1, _ = await api.call(
        "mutation($s: ID!) { removeSkill(skillId: $s) }", {"s": skill["addSkill"]["id"]}, b_token
    )
    s2, body = await api.call(
        'mutation($u: ID!) { sendMessage(recipientId: $u, body: "hi") { id } }',
        {"u": b_id},
        a_token,
    )
    # THEN both are forbidden
    assert (s1, s2) == (403, 403)
    assert body["errors"][0]["message"] == "You can only message your connections."


async def test_private_profile_shows_details_only_to_owner_and_connections(api: Api) -> None:
    # GIVEN a private profile with history, a connection and a stranger
    owner, owner_id = await api.register("owner@example.com")
    friend, friend_id = await api.register("friend@example.com")
    stranger, _ = await api.register("stranger@example.com")
    await api.ok(
        'mutation { updateProfile(input: {headline: "CTO", location: "Paris",'
        " visibility: PRIVATE}) { visibility } }",
        token=owner,
    )
    await api.ok(
        'mutation { addWorkExperience(input: {companyName: "Acme", title: "CTO"}) { id } }',
        token=owner,
    )
    await api.ok('mutation { addEducation(input: {schoolName: "MIT"}) { id } }', token=owner)
    await api.ok('mutation { addSkill(skillName: "Rust") { id } }', token=owner)
    await api.connect(owner, friend, friend_id)
    # WHEN each reads the profile
    seen = {
        who: (await api.ok(PROFILE, {"u": owner_id}, tok))["profile"]
        for who, tok in (("owner", owner), ("friend", friend), ("stranger", stranger))
    }
    # THEN the stranger sees name and skills only
    assert seen["stranger"]["headline"] is None and seen["stranger"]["location"] is None
    assert seen["stranger"]["workExperience"] == [] and seen["stranger"]["education"] == []
    assert seen["stranger"]["skills"] == [{"skillName": "Rust"}]
    assert seen["friend"]["headline"] == "CTO" and seen["friend"]["education"] == [
        {"schoolName": "MIT"}
    ]
    assert seen["owner"]["isOwnProfile"] and not seen["friend"]["isOwnProfile"]


async def test_secret_fields_exist_in_no_graphql_type() -> None:
    # Introspection is off on the served API (API_INTROSPECTION), so ask the schema itself.
    data: dict[str, Any] = dict(introspection_from_schema(build_schema()._schema))
    names = {
        f["name"].lower()
        for t in data["__schema"]["types"]
        for f in (t["fields"] or []) + (t["inputFields"] or [])
    }
    assert "passwordhash" not in names and "mfasecret" not in names
    assert "password" in names  # the check can see input fields at all


async def test_secrets_never_reach_the_logs(api: Api) -> None:
    # GIVEN JSON logs captured at DEBUG
    stream = io.StringIO()
    configure_logging("api", "DEBUG", stream=stream)
    # WHEN a user registers, fails a login and triggers a validation error
    await api.register("logme@example.com")
    await api.call(
        'mutation { login(email: "logme@example.com", password: "Wrong-pass-123") { token } }'
    )
    await api.call(REGISTER, {"i": reg_input(password="weak")})
    # THEN neither password appears in any log line
    text = stream.getvalue()
    assert GOOD_PASSWORD not in text and "Wrong-pass-123" not in text and "$argon2" not in text


async def test_state_change_and_event_commit_together(api: Api, db: asyncpg.Pool) -> None:
    # GIVEN a user WHEN they post
    token, user_id = await api.register("outbox@example.com")
    post = await api.ok('mutation { createPost(textContent: "hello") { id } }', token=token)
    # THEN the outbox holds a PostCreated for that post keyed by its author
    row = await db.fetchrow(
        "SELECT aggregate_key, body FROM outbox WHERE event_type = 'PostCreated'"
    )
    assert row["aggregate_key"] == user_id
    assert post["createPost"]["id"] in row["body"]
    kinds = await db.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [k["event_type"] for k in kinds] == ["UserProfileUpdated", "PostCreated"]


async def test_concurrent_requests_in_both_directions_leave_one_pending(
    api: Api, db: asyncpg.Pool
) -> None:
    a, a_id = await api.register("ca@example.com")
    b, b_id = await api.register("cb@example.com")
    q = "mutation($u: ID!) { requestConnection(userId: $u) { id } }"
    calls = [
        api.call(q, {"u": b_id} if i % 2 else {"u": a_id}, a if i % 2 else b) for i in range(6)
    ]
    results = await asyncio.gather(*calls)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 400, 400, 400, 400, 400]
    assert await db.fetchval("SELECT count(*) FROM connections") == 1
    bad = next(body for s, body in results if s == 400)
    assert (
        bad["errors"][0]["message"]
        == "A connection request between you and this user is already pending."
    )


async def test_feed_hydrates_redis_ids_skipping_deleted_posts_and_pages(
    api: Api, db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    # GIVEN A's feed holding three of B's posts, one since deleted
    a, a_id = await api.register("reader@example.com")
    b, _ = await api.register("writer@example.com", "Bo Writer")
    ids = []
    for text in ("one", "two", "three"):
        post = await api.ok(
            "mutation($t: String!) { createPost(textContent: $t) { id } }", {"t": text}, b
        )
        ids.append(post["createPost"]["id"])
    for pid in ids:
        await redis_client.lpush(feed_key(a_id), pid)
    await db.execute("DELETE FROM posts WHERE id = $1", uuid.UUID(ids[1]))
    # WHEN A reads two at a time
    q = (
        "query($a: String) { feed(first: 2, after: $a)"
        " { items { textContent author { fullName } } nextCursor } }"
    )
    page1 = (await api.ok(q, {"a": None}, a))["feed"]
    page2 = (await api.ok(q, {"a": page1["nextCursor"]}, a))["feed"]
    # THEN newest first, the deleted one skipped, and the pages join up
    assert [i["textContent"] for i in page1["items"]] == ["three"]
    assert page1["items"][0]["author"]["fullName"] == "Bo Writer"
    assert [i["textContent"] for i in page2["items"]] == ["one"]
    assert page2["nextCursor"] is None


async def test_mark_notifications_read_resets_the_unread_counter(
    api: Api, db: asyncpg.Pool, redis_client: redis_asyncio.Redis
) -> None:
    token, user_id = await api.register("reads@example.com")
    await db.execute(
        "INSERT INTO notifications (event_id, user_id, kind) VALUES ($1, $2, 'comment_created')",
        uuid.uuid4(),
        uuid.UUID(user_id),
    )
    await redis_client.set(unread_notifications_key(user_id), 1)
    assert (await api.ok("{ unreadNotifications }", token=token))["unreadNotifications"] == 1
    await api.ok("mutation { markNotificationsRead }", token=token)
    data = await api.ok("{ unreadNotifications notifications { read } }", token=token)
    assert data == {"unreadNotifications": 0, "notifications": [{"read": True}]}


@pytest.mark.parametrize(
    "payload",
    [{"query": "{ me { id "}, {"query": "{ noSuchField }"}, {"query": 42}, {"nothing": 1}],
)
async def test_malformed_graphql_answers_400(api: Api, payload: dict[str, object]) -> None:
    r = await api.client.post("/graphql", json=payload)
    assert r.status_code == 400


async def test_invalid_json_and_bad_ids_answer_400(api: Api) -> None:
    token, _ = await api.register("ids@example.com")
    r = await api.client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    status, _ = await api.call('query { profile(userId: "nope") { userId } }', token=token)
    assert (r.status_code, status) == (400, 400)


async def test_text_postgresql_cannot_store_answers_400_not_500(api: Api) -> None:
    # GIVEN a user WHEN NUL characters arrive in a search, a post and an input object
    token, _ = await api.register("nul@example.com")
    search = await bad_request(
        api, "query($q: String!) { searchUsers(query: $q) { userId } }", {"q": "a\x00"}, token
    )
    post = await bad_request(
        api, "mutation($t: String!) { createPost(textContent: $t) { id } }", {"t": "\x00"}, token
    )
    profile = await bad_request(
        api,
        "mutation($h: String) { updateProfile(input: {headline: $h}) { headline } }",
        {"h": "x\x00"},
        token,
    )
    # THEN each is refused with the one message, naming the argument
    message = "Text cannot contain NUL characters or unpaired surrogates."
    assert search == (message, "query")
    assert post == (message, "textContent")
    assert profile == (message, "headline")
