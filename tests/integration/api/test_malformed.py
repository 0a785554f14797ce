"""Every malformed request answers 4xx with a GraphQL error, never a 5xx or an ERROR line.

The sweep is generated from the strawberry schema object: every argument of
every query and mutation, and every field of their input objects, is sent
through `variables` with JSON values of the wrong type (and null or nothing
where a value is required), the other arguments valid.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_nullable_type,
)
from structlog.testing import capture_logs

from api.app import build_schema
from tests.integration.api.client import Api
from tests.integration.api.schema_values import valid_value as schema_valid_value

SCHEMA = build_schema()._schema
MISSING = object()  # the variable is left out of `variables`

WRONG_SCALARS: dict[str, list[Any]] = {
    "String": [5, 1.5, True, ["a"], {"a": 1}],
    "Int": [2**31, -(2**31) - 1, 1.5, "10", True, [1], {"a": 1}],
    "Float": ["1.5", True, [1.5], {"a": 1}],
    "Boolean": ["yes", 1, [True], {"a": 1}],
    "ID": [1.5, True, ["a"], {"a": 1}],
    "Date": ["not a date", "2020-13-45", 5, True, ["2020-01-01"]],
    "DateTime": ["not a time", 5, True, {"a": 1}],
}
VALID_SCALARS: dict[str, Any] = {
    "String": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "ID": str(uuid.UUID(int=1)),
    "Date": "1990-01-01",
    "DateTime": "2020-01-01T00:00:00+00:00",
}


@dataclass(frozen=True)
class Case:
    """One request: an operation with every argument a variable, one of them wrong."""

    label: str
    query: str
    variables: dict[str, Any]


def valid_value(type_: GraphQLInputType) -> Any:
    return schema_valid_value(type_, VALID_SCALARS)


def wrong_values(type_: GraphQLInputType) -> Iterator[tuple[str, Any]]:
    """(where, value) pairs that cannot be coerced to `type_`."""
    if isinstance(type_, GraphQLNonNull):
        yield "null", None
        yield "missing", MISSING
    named = get_nullable_type(type_)
    if isinstance(named, GraphQLList):
        for where, value in wrong_values(named.of_type):
            if value is not MISSING:
                yield f"[{where}]", [value]
    elif isinstance(named, GraphQLEnumType):
        yield from (("enum", v) for v in ("NOT_A_VALUE", "public", 5, ["PUBLIC"]))
    elif isinstance(named, GraphQLInputObjectType):
        yield from wrong_objects(named)
    else:
        assert isinstance(named, GraphQLScalarType), named
        yield from ((f"{named.name}", v) for v in WRONG_SCALARS[named.name])


def wrong_objects(type_: GraphQLInputObjectType) -> Iterator[tuple[str, Any]]:
    """Not an object, or an object with one field wrong, or with an unknown field."""
    yield from (("object", v) for v in ("x", 5, [1], True))
    base = valid_value(type_)
    for name, f in type_.fields.items():
        for where, value in wrong_values(f.type):
            if value is MISSING and name not in base:
                continue  # leaving out an optional field is fine
            changed = {k: v for k, v in base.items() if k != name}
            if value is not MISSING:
                changed[name] = value
            yield f"{name}.{where}", changed
    yield "unknown field", {**base, "noSuchField": 1}


def selection(field: GraphQLField) -> str:
    named = field.type
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    return " { __typename }" if isinstance(named, GraphQLObjectType) else ""


def cases() -> Iterator[Case]:
    roots = (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type))
    for kind, root in roots:
        assert root is not None
        for name, field in root.fields.items():
            args: dict[str, GraphQLArgument] = field.args
            if not args:
                continue
            defs = ", ".join(f"${a}: {arg.type}" for a, arg in args.items())
            uses = ", ".join(f"{a}: ${a}" for a in args)
            query = f"{kind}({defs}) {{ {name}({uses}){selection(field)} }}"
            valid = {a: valid_value(arg.type) for a, arg in args.items()}
            for target, arg in args.items():
                for where, value in wrong_values(arg.type):
                    variables = {a: v for a, v in valid.items() if a != target}
                    if value is not MISSING:
                        variables[target] = value
                    yield Case(f"{name}({target}: {where})", query, variables)


def input_fields_reached() -> set[str]:
    """Every input field of every input type the operations take, for the coverage check."""
    reached: set[str] = set()
    for case in cases():
        for value in case.variables.values():
            if isinstance(value, dict):
                reached.update(value)
    return reached


async def test_every_argument_with_wrong_json_types_answers_4xx(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a registered user and every generated case
    token, _ = await api.register("sweep@example.com")
    all_cases = list(cases())
    failures: list[str] = []
    # WHEN each is sent through variables
    with capture_logs() as logs, caplog.at_level(logging.ERROR):
        for case in all_cases:
            status, body = await api.call(case.query, case.variables, token)
            errors = body.get("errors") or []
            codes = [e.get("extensions", {}).get("code") for e in errors]
            if not 400 <= status < 500 or not errors or None in codes:
                failures.append(f"{case.label} {case.variables!r} -> {status} {body}")
    # THEN every one was a 4xx with coded GraphQL errors, and nothing was logged as an error
    assert failures == []
    assert len(all_cases) >= 200, len(all_cases)
    assert {"email", "password", "fullName", "visibility", "companyName"} <= input_fields_reached()
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_wrongly_typed_variable_names_the_variable(api: Api) -> None:
    token, _ = await api.register("named@example.com")
    status, body = await api.call(
        "mutation($t: String!) { createPost(textContent: $t) { id } }", {"t": 5}, token
    )
    assert status == 400
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "t"}
    assert body["errors"][0]["message"].startswith("Variable '$t'")


RAW_BODIES = {
    "unparseable JSON": (b'{"query": "{ me { id } "', 400, "not valid JSON"),
    "invalid UTF-8": (b'{"query": "\xff"}', 400, "not valid JSON"),
    "a list": (b"[]", 400, "must be a JSON object"),
    "a string": (b'"x"', 400, "must be a JSON object"),
    "a number": (b"5", 400, "must be a JSON object"),
    "null": (b"null", 400, "must be a JSON object"),
    "nested 5,000 deep": (
        b'{"query": "{ me { id } }", "variables": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        400,
        "nests deeper than",
    ),
    "variables a list": (b'{"query": "{ me { id } }", "variables": [1]}', 400, "variables"),
    "query a number": (b'{"query": 5}', 400, "query"),
    "operationName a number": (b'{"query": "{ me { id } }", "operationName": 5}', 400, "operation"),
    "no query": (b'{"variables": {}}', 400, "No GraphQL query"),
    "over the size limit": (b'{"query": "' + b" " * 140_000 + b'{ me { id } }"}', 413, "exceeds"),
    "query text over the limit": (
        b'{"query": "{ me { id } }' + b" " * 20_001 + b'"}',
        400,
        "exceeds",
    ),
}


@pytest.mark.parametrize("name", list(RAW_BODIES))
async def test_a_malformed_body_answers_4xx_with_a_graphql_error(api: Api, name: str) -> None:
    body, status, fragment = RAW_BODIES[name]
    r = await api.client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    error = r.json()["errors"][0]
    assert fragment in error["message"]
    assert error["extensions"]["code"] in ("BAD_REQUEST", "PAYLOAD_TOO_LARGE")


async def test_a_body_over_the_limit_without_a_length_is_refused_as_it_arrives(api: Api) -> None:
    # GIVEN a chunked body (no Content-Length) far over the limit
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "'
        for _ in range(100):
            yield b" " * 10_000
        yield b'{ me { id } }"}'

    # WHEN it is posted
    r = await api.client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    # THEN it is refused with 413
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_an_unsupported_content_type_answers_4xx_json(api: Api) -> None:
    r = await api.client.post(
        "/graphql",
        content=json.dumps({"query": "{ me { id } }"}),
        headers={"content-type": "text/plain"},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
