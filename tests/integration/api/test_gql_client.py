"""A third-party GraphQL client (gql, httpx transport) against the served API.

The client asks for `application/graphql-response+json` first, as the
GraphQL-over-HTTP specification recommends; the codes and fields of the API's
errors must reach it whether the request failed before execution (4xx, no
`data`) or in a resolver (the seed's validation messages).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from contracts.validation import PASSWORD_COMPLEXITY
from tests.integration.api.client import GOOD_PASSWORD
from tests.integration.api.served import Served, served_api  # noqa: F401 (fixture)

ACCEPT = "application/graphql-response+json, application/json;q=0.9"
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }"
CREATE_POST = "mutation($t: String!) { createPost(textContent: $t) { id } }"


def registration(password: str = GOOD_PASSWORD) -> dict[str, Any]:
    email = f"gql-{uuid.uuid4().hex[:8]}@example.com"
    return {"email": email, "password": password, "fullName": "G Q", "dateOfBirth": "1990-01-01"}


@pytest.fixture
def gql_transport(
    served_api: Served,  # noqa: F811 (the imported fixture)
    db: asyncpg.Pool,
) -> HTTPXAsyncTransport:
    """A gql transport to the served API over empty tables."""
    return HTTPXAsyncTransport(url=f"{served_api.url}/graphql", headers={"Accept": ACCEPT})


async def execute(
    transport: HTTPXAsyncTransport, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"Accept": ACCEPT} | ({"Authorization": f"Bearer {token}"} if token else {})
    transport.kwargs["headers"] = headers
    async with Client(transport=transport) as session:
        data: dict[str, Any] = await session.execute(
            GraphQLRequest(query, variable_values=variables)
        )
        return data


async def error_of(
    transport: HTTPXAsyncTransport, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    with pytest.raises(TransportQueryError) as caught:
        await execute(transport, query, variables, token)
    assert caught.value.errors, caught.value
    error: dict[str, Any] = caught.value.errors[0]
    return error


async def test_gql_client_gets_data_in_the_graphql_response_media_type(
    gql_transport: HTTPXAsyncTransport,
) -> None:
    # WHEN gql registers a user
    data = await execute(gql_transport, REGISTER, {"i": registration()})
    # THEN it gets the token, in the media type it preferred
    assert data["register"]["token"]
    assert gql_transport.response_headers is not None
    assert gql_transport.response_headers["content-type"] == "application/graphql-response+json"


async def test_gql_client_sees_the_code_and_field_of_a_wrongly_typed_variable(
    gql_transport: HTTPXAsyncTransport,
) -> None:
    # GIVEN a registered user
    token = (await execute(gql_transport, REGISTER, {"i": registration()}))["register"]["token"]
    # WHEN gql sends a number where a String! belongs
    error = await error_of(gql_transport, CREATE_POST, {"t": 5}, token)
    # THEN the request error reaches it with its code and the variable's name
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "t"}
    assert "String cannot represent a non string value" in error["message"]


async def test_gql_client_sees_the_seed_validation_message_code_and_field(
    gql_transport: HTTPXAsyncTransport,
) -> None:
    # WHEN gql registers with a weak password
    error = await error_of(gql_transport, REGISTER, {"i": registration(password="weak")})
    # THEN the seed's exact message, code and field reach it
    assert error["message"] == PASSWORD_COMPLEXITY
    assert error["extensions"] == {"code": "BAD_REQUEST", "field": "password"}


async def test_gql_client_sees_a_page_size_over_the_limit(
    gql_transport: HTTPXAsyncTransport,
) -> None:
    token = (await execute(gql_transport, REGISTER, {"i": registration()}))["register"]["token"]
    error = await error_of(
        gql_transport, "query($n: Int!) { feed(first: $n) { nextCursor } }", {"n": 1000}, token
    )
    assert error["extensions"] == {"code": "BAD_REQUEST", "field": "first"}
    assert error["message"] == "first must be between 1 and 100."
