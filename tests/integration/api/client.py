"""A GraphQL test client and the test credentials, shared by the API and end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

SECRET = "test-secret-" + "x" * 40
GOOD_PASSWORD = "Correct-horse-1"


class Api:
    """A GraphQL client: `call` returns (status, body)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self, query: str, variables: Mapping[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return r.status_code, r.json()

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        status, body = await self.call(query, variables, token)
        assert status == 200, body
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def register(
        self, email: str, full_name: str = "Ada Lovelace", dob: str = "1990-01-01"
    ) -> tuple[str, str]:
        data = await self.ok(
            "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }",
            {
                "i": {
                    "email": email,
                    "password": GOOD_PASSWORD,
                    "fullName": full_name,
                    "dateOfBirth": dob,
                }
            },
        )
        return data["register"]["token"], data["register"]["user"]["id"]

    async def connect(self, a_token: str, b_token: str, b_id: str) -> None:
        req = await self.ok(
            "mutation($u: ID!) { requestConnection(userId: $u) { id } }", {"u": b_id}, a_token
        )
        await self.ok(
            "mutation($c: ID!) { respondToConnection(connectionId: $c, accept: true) { status } }",
            {"c": req["requestConnection"]["id"]},
            b_token,
        )


# Clients of one app that each come from a client address of their own
# (the `api_from` fixture).
ApiFrom = Callable[[str], Api]
