"""The API's cost limits (docs/api-limits.md) and its media types, through HTTP.

The app is `config.api.build_api` over the test database and Redis; a test that
needs other settings or a search index of its own builds one with `api_with`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis_asyncio
from argon2 import PasswordHasher
from graphql import get_introspection_query

from config.api import build_api
from pipelines.search.ports import SearchHit, SearchQuery
from pipelines.search.postgres import PostgresSearchIndex
from tests.integration.api.client import GOOD_PASSWORD, SECRET, Api
from tests.settings import SettingsFactory

ApiWith = Callable[..., Any]
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
def api_with(
    db: asyncpg.Pool, redis_client: redis_asyncio.Redis, settings_factory: SettingsFactory
) -> ApiWith:
    """Call it with settings overrides (and fakes of the search index or the unread
    counters, `search=` / `counters=`) for an `Api` over that app."""

    @asynccontextmanager
    async def build(
        search: Any = None, counters: Any = None, **overrides: Any
    ) -> AsyncIterator[Api]:
        settings = settings_factory(api_token_secret=SECRET, **overrides)
        async with AsyncExitStack() as stack:
            app = await build_api(
                stack,
                settings,
                pool=db,
                redis=redis_client,
                search=search or PostgresSearchIndex(db),
                counters=counters,
                hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield Api(client)

    return build


def aliases(count: int, field: str) -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


def register_mutation(*emails: str) -> str:
    fields = " ".join(
        f'r{i}: register(input: {{email: "{e}", password: "{GOOD_PASSWORD}",'
        f' fullName: "A", dateOfBirth: "1990-01-01"}}) {{ token }}'
        for i, e in enumerate(emails)
    )
    return f"mutation {{ {fields} }}"


def first_error(body: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_ten_aliases_are_allowed_eleven_are_not(api: Api) -> None:
    token, _ = await api.register("alias@example.com")
    assert (await api.call(aliases(10, "unreadNotifications"), token=token))[0] == 200
    status, body = await api.call(aliases(11, "unreadNotifications"), token=token)
    assert status == 400
    assert first_error(body)["message"] == "11 aliases found. Allowed: 10"
    assert first_error(body)["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_one_request_registers_at_most_one_account(api: Api, db: asyncpg.Pool) -> None:
    # WHEN one request carries two registrations
    status, body = await api.call(register_mutation("one@example.com", "two@example.com"))
    # THEN it is refused for its cost before anything runs
    assert status == 400
    assert first_error(body)["message"].startswith("The operation costs 40; at most 20")
    assert await db.fetchval("SELECT count(*) FROM users") == 0
    # AND one registration alone goes through
    assert (await api.call(register_mutation("one@example.com")))[0] == 200


async def test_a_query_over_the_token_limit_is_refused(api: Api) -> None:
    query = "{ " + "__typename " * 1001 + "}"
    status, body = await api.call(query)
    assert status == 400
    assert "more than 1000 tokens" in first_error(body)["message"]


@pytest.mark.parametrize(
    "query",
    [
        "query($n: Int!) { feed(first: $n) { nextCursor } }",
        "query($n: Int!) { notifications(first: $n) { id } }",
        "query($n: Int!) { searchUsers(first: $n) { userId } }",
    ],
)
@pytest.mark.parametrize("first", [0, 101])
async def test_a_page_size_out_of_bounds_answers_400(api: Api, query: str, first: int) -> None:
    token, _ = await api.register("pages@example.com")
    status, body = await api.call(query, {"n": first}, token)
    assert status == 400
    assert first_error(body)["message"] == "first must be between 1 and 100."
    assert first_error(body)["extensions"] == {"code": "BAD_REQUEST", "field": "first"}


@pytest.mark.parametrize(
    ("variables", "field", "message"),
    [
        ({"q": "x" * 101}, "query", "Search text cannot exceed 100 characters."),
        ({"q": "a " * 11}, "query", "Search text cannot exceed 10 words."),
        ({"s": ["s"] * 11}, "skills", "At most 10 skills can be searched at once."),
        ({"c": ["c" * 101]}, "companies", "Each of companies cannot exceed 100 characters."),
    ],
)
async def test_search_input_over_its_limits_answers_400(
    api: Api, variables: dict[str, Any], field: str, message: str
) -> None:
    token, _ = await api.register("search@example.com")
    query = (
        'query($q: String! = "", $s: [String!], $c: [String!])'
        " { searchUsers(query: $q, skills: $s, companies: $c) { userId } }"
    )
    status, body = await api.call(query, variables, token)
    assert status == 400
    assert first_error(body)["message"] == message
    assert first_error(body)["extensions"] == {"code": "BAD_REQUEST", "field": field}


async def test_introspection_is_off_by_default_and_typename_still_answers(api: Api) -> None:
    status, body = await api.call("{ __schema { queryType { name } } }")
    assert status == 400
    assert "introspection has been disabled" in first_error(body)["message"]
    assert await api.ok("{ __typename }") == {"__typename": "Query"}


async def test_with_introspection_on_the_standard_query_answers_and_bombs_do_not(
    api_with: ApiWith,
) -> None:
    async with api_with(api_introspection=True) as api:
        data = await api.ok(get_introspection_query(descriptions=True))
        assert data["__schema"]["queryType"]["name"] == "Query"
        lists = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
        status, body = await api.call(lists)
        assert status == 400
        assert first_error(body)["message"].startswith("Introspection may nest at most 3 lists")
        deep = '{ __type(name: "Query") { ' + "ofType { " * 15 + "name" + " }" * 15 + " } }"
        status, body = await api.call(deep)
        assert status == 400
        assert first_error(body)["message"] == "The query is nested deeper than 15 levels."


async def test_metrics_are_not_served_on_the_api_port(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 404


class Overlap:
    """Counts calls running at once; each holds until `target` run together (or `hold`
    seconds pass), so a missing bound would let more than `target` overlap."""

    def __init__(self, target: int, hold: float) -> None:
        self.running = 0
        self.most = 0
        self._target = target
        self._hold = hold
        self._reached = asyncio.Event()

    async def call(self) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        if self.running >= self._target:
            self._reached.set()
        try:
            await asyncio.wait_for(self._reached.wait(), self._hold)
        except TimeoutError:
            pass
        finally:
            self.running -= 1


class OverlapCounters(Overlap):
    async def unread(self, user_id: uuid.UUID) -> int:
        await self.call()
        return 0

    async def reset(self, user_id: uuid.UUID, unread: int = 0) -> None:
        await self.call()


class OverlapSearch(Overlap):
    async def search(self, query: SearchQuery) -> list[SearchHit]:
        await self.call()
        return []


async def test_one_request_runs_at_most_four_resolvers_at_once(api_with: ApiWith) -> None:
    # GIVEN unread counters that record how many reads overlap
    counters = OverlapCounters(target=4, hold=10.0)
    async with api_with(counters=counters) as api:
        token, _ = await api.register("gate@example.com")
        # WHEN one request asks for ten counts at once
        data = await api.ok(aliases(10, "unreadNotifications"), token=token)
    # THEN all answered, never more than four at a time
    assert len(data) == 10
    assert counters.most == 4


async def test_the_searches_of_one_request_take_turns(api_with: ApiWith) -> None:
    # Each search holds 0.05 s for a second one to join it; none ever does.
    search = OverlapSearch(target=2, hold=0.05)
    async with api_with(search=search) as api:
        token, _ = await api.register("turns@example.com")
        data = await api.ok(aliases(5, "searchUsers { userId }"), token=token)
    assert len(data) == 5
    assert search.most == 1


class HangingSearch:
    """A search index whose searches never finish."""

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        await asyncio.Event().wait()
        return []


async def test_a_search_over_its_time_answers_503_with_retry_after(api_with: ApiWith) -> None:
    async with api_with(search=HangingSearch(), api_search_timeout_seconds=0.1) as api:
        token, _ = await api.register("slow@example.com")
        r = await api.client.post(
            "/graphql",
            json={"query": '{ searchUsers(query: "ada") { userId } }'},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert first_error(r.json())["extensions"]["code"] == "SERVICE_UNAVAILABLE"


async def post(
    api: Api, query: str, variables: dict[str, Any], accept: str | None
) -> httpx.Response:
    headers = {"accept": accept} if accept else {}
    return await api.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


CREATE_POST = "mutation($t: String!) { createPost(textContent: $t) { id } }"
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { token } }"


async def test_graphql_response_media_type_request_errors_are_4xx_without_data(api: Api) -> None:
    r = await post(api, CREATE_POST, {"t": 5}, f"{GRAPHQL_RESPONSE}, application/json;q=0.9")
    assert r.status_code == 400
    assert r.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in r.json()
    assert first_error(r.json())["extensions"] == {"code": "BAD_USER_INPUT", "field": "t"}


async def test_graphql_response_media_type_keeps_validation_status_code_and_field(
    api: Api,
) -> None:
    weak = {
        "email": "w@example.com",
        "password": "weak",
        "fullName": "W",
        "dateOfBirth": "1990-01-01",
    }
    r = await post(api, REGISTER, {"i": weak}, GRAPHQL_RESPONSE)
    assert r.status_code == 400
    assert r.headers["content-type"] == GRAPHQL_RESPONSE
    assert r.json()["data"] is None
    assert first_error(r.json())["extensions"] == {"code": "BAD_REQUEST", "field": "password"}


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "text/html"])
async def test_other_clients_keep_application_json(api: Api, accept: str | None) -> None:
    r = await post(api, CREATE_POST, {"t": 5}, accept)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["data"] is None


async def test_a_refused_body_answers_in_the_preferred_media_type(api: Api) -> None:
    r = await api.client.post(
        "/graphql",
        content=b"[]",
        headers={"content-type": "application/json", "accept": GRAPHQL_RESPONSE},
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in r.json()


class SleepingSearch:
    """A search whose statement sleeps in PostgreSQL: it stands for a slow query."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        await self.pool.fetch("SELECT pg_sleep(30) /* slow search */")
        return []


async def test_a_search_over_its_time_is_cancelled_in_postgresql_too(
    api_with: ApiWith, db: asyncpg.Pool
) -> None:
    # GIVEN a search whose statement would run for 30 s, and a 0.2 s search time
    async with api_with(search=SleepingSearch(db), api_search_timeout_seconds=0.2) as api:
        token, _ = await api.register("cancel@example.com")
        # WHEN it is asked for
        status, body = await api.call('{ searchUsers(query: "ada") { userId } }', token=token)
    # THEN it answers 503 and the statement no longer runs on the server
    assert status == 503, body
    running = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query LIKE '%slow search%' AND state = 'active' AND pid <> pg_backend_pid()"
    )
    assert running == 0
