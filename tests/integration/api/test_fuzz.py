"""A schemathesis fuzz run of every GraphQL operation against the served API: a gate.

The API is `socialpipe api`'s app under uvicorn (`tests.integration.api.served`)
with its production defaults, introspection off; schemathesis reads the schema
from the strawberry schema object instead. Every query and mutation gets
generated arguments, each example once with a bearer token or without one at
random (both always occur); no answer may be a 5xx. Bounded in examples per
operation and in time, so the run stays well under a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import schemathesis
from graphql import introspection_from_schema
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from api.app import build_schema
from tests.integration.api.client import GOOD_PASSWORD
from tests.integration.api.served import Served, served_api  # noqa: F401 (fixture)

# Bounded so the whole run stays well under a minute on a shared two-core machine.
EXAMPLES_PER_OPERATION = 25
RUN_DEADLINE_SECONDS = 90.0
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }"


def register_token(base_url: str) -> str:
    variables = {
        "i": {
            "email": "fuzzer@example.com",
            "password": GOOD_PASSWORD,
            "fullName": "Fuzz Er",
            "dateOfBirth": "1990-01-01",
        }
    }
    r = httpx.post(f"{base_url}/graphql", json={"query": REGISTER, "variables": variables})
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["register"]["token"])


@dataclass
class FuzzReport:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    with_token: int = 0


Operation = APIOperation[Any, Any, Any, Any]


def fuzz_operation(
    operation: Operation, base_url: str, token: str, report: FuzzReport, deadline: float
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), authenticated=strategies.booleans())
    def run(case: schemathesis.Case[Any], authenticated: bool) -> None:
        if time.monotonic() > deadline:
            return
        headers = {"Authorization": f"Bearer {token}"} if authenticated else {}
        response = case.call(base_url=base_url, headers=headers, timeout=10)
        report.calls += 1
        report.with_token += authenticated
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            shown = f"{operation.label}: {case.body!r} -> {response.text[:300]}"
            report.server_errors.append(shown)

    run()


def _loaded(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    assert isinstance(result, Ok), result
    return result.ok()


def test_fuzzing_every_operation_never_answers_a_server_error(
    served_api: Served,  # noqa: F811 (the imported fixture)
    db: asyncpg.Pool,
) -> None:
    # GIVEN the served API over empty tables, a registered user and the schema
    token = register_token(served_api.url)
    introspection = introspection_from_schema(build_schema()._schema)
    schema = schemathesis.graphql.from_dict(dict(introspection))
    operations = [_loaded(result) for result in schema.get_all_operations()]
    report = FuzzReport()
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    # WHEN every operation is fuzzed with generated arguments, with and without a token
    for operation in operations:
        fuzz_operation(operation, served_api.url, token, report, deadline)
    # THEN every operation was exercised, both ways, and no answer was a 5xx
    labels = {op.label for op in operations}
    assert {"Mutation.register", "Mutation.createPost", "Query.searchUsers"} <= labels
    assert report.calls >= len(operations) * 2, report
    assert 0 < report.with_token < report.calls, report
    assert report.server_errors == [], report.server_errors
