"""A token whose account was deleted is refused with 401 by every operation.

The operations come from the schema itself, so a new query or mutation is
covered without touching this test: each is called with the smallest valid
arguments, through variables, with the token of a deleted account.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from graphql import (
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    get_named_type,
)

from api.app import build_schema
from api.uow import PgUnitsOfWork
from tests.integration.api.client import Api
from tests.integration.api.schema_values import valid_value

NO_TOKEN_NEEDED = {"register", "login"}
SCALARS: dict[str, Any] = {
    "ID": str(uuid.UUID(int=7)),
    "String": "Hello there",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "Date": "2000-01-01",
    "DateTime": "2026-01-01T00:00:00+00:00",
}


def operation(kind: str, name: str, field: GraphQLField) -> tuple[str, dict[str, Any]]:
    """`kind` (query or mutation) calling `name` with its required arguments as variables."""
    required = {a: arg for a, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
    declared = ", ".join(f"${a}: {arg.type}" for a, arg in required.items())
    passed = ", ".join(f"{a}: ${a}" for a in required)
    selection = (
        " { __typename }" if isinstance(get_named_type(field.type), GraphQLObjectType) else ""
    )
    text = f"{kind}{f'({declared})' if declared else ''} {{ {name}"
    text += f"{f'({passed})' if passed else ''}{selection} }}"
    return text, {a: valid_value(arg.type, SCALARS) for a, arg in required.items()}


def every_operation() -> list[tuple[str, str, dict[str, Any]]]:
    schema = build_schema()._schema
    found = []
    for kind, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            if name not in NO_TOKEN_NEEDED:
                found.append((name, *operation(kind, name, field)))
    return found


async def test_every_operation_answers_401_to_a_deleted_accounts_token(
    api: Api, db: asyncpg.Pool
) -> None:
    # GIVEN a valid token whose account has since been deleted
    token, user_id = await api.register("gone@example.com")
    await db.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user_id))
    operations = every_operation()
    assert {"feed", "createPost", "createComment", "respondToConnection"} <= {
        name for name, _, _ in operations
    }
    # WHEN every query and mutation is called with it
    answers = {}
    for name, text, variables in operations:
        status, body = await api.call(text, variables, token)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
        answers[name] = (status, codes)
    # THEN each one answers 401 UNAUTHENTICATED, none 5xx and none 200
    wrong = {n: a for n, a in answers.items() if a != (401, ["UNAUTHENTICATED"])}
    assert wrong == {}, f"{len(wrong)} of {len(answers)} operations: {wrong}"


async def test_a_write_in_flight_keeps_its_account_until_it_commits(db: asyncpg.Pool) -> None:
    # GIVEN a user, and a unit of work that has begun writing for them
    user_id = uuid.uuid4()
    await db.execute("INSERT INTO users (id, email) VALUES ($1, 'w@example.com')", user_id)
    async with PgUnitsOfWork(db)() as uow:
        assert await uow.users.hold_account(user_id)
        # WHEN the account is deleted meanwhile THEN the deletion has to wait for the unit
        async with db.acquire() as other:
            await other.execute("SET lock_timeout = '100ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.execute("DELETE FROM users WHERE id = $1", user_id)
            await other.execute("RESET lock_timeout")
    # AND once the unit has ended the deletion goes through
    assert await db.execute("DELETE FROM users WHERE id = $1", user_id) == "DELETE 1"
