"""A schemathesis fuzz run of every GraphQL operation against the real composition root.

The API is served by uvicorn on a free loopback port in a thread with its own
event loop (its asyncpg pool and Redis client live on that loop), built by
`config.api.build_api` over the test database, Redis and the PostgreSQL search
backend. Every query and mutation in the schema gets generated arguments, once
as an authenticated user and once without a token; no answer may be a 5xx.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
import uvicorn
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from config.api import build_api
from config.settings import Settings
from tests.integration.api.client import GOOD_PASSWORD, SECRET
from tests.settings import PortFactory, SettingsFactory

# Bounded so the whole run stays well under a minute on a shared two-core machine.
EXAMPLES_PER_OPERATION = 25
RUN_DEADLINE_SECONDS = 90.0
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { token user { id } } }"


class ServedApi(threading.Thread):
    """`socialpipe api`'s app under uvicorn, in a thread with its own loop."""

    def __init__(self, settings: Settings, port: int) -> None:
        super().__init__(daemon=True, name="fuzz-api")
        self.settings = settings
        self.port = port
        self.server: uvicorn.Server | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by the fixture, never swallowed
            self.failure = exc

    async def _serve(self) -> None:
        async with AsyncExitStack() as stack:
            app = await build_api(
                stack,
                self.settings,
                hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            )
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
            self.server = uvicorn.Server(config)
            await self.server.serve()

    def wait_started(self, deadline: float = 20.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.failure is not None:
                raise self.failure
            if self.server is not None and self.server.started:
                return
            time.sleep(0.05)
        raise TimeoutError("The API did not start in time.")

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.join(timeout=10)


@pytest.fixture
def served_api(
    db: asyncpg.Pool, settings_factory: SettingsFactory, port_factory: PortFactory
) -> Iterator[str]:
    """Base URL of a served API over emptied tables."""
    cfg = settings_factory(api_token_secret=SECRET, search_backend="postgres")
    server = ServedApi(cfg, port_factory())
    server.start()
    try:
        server.wait_started()
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


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
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            shown = f"{operation.label}: {case.body!r} -> {response.text[:300]}"
            report.server_errors.append(shown)

    run()


def _loaded(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    assert isinstance(result, Ok), result
    return result.ok()


def test_fuzzing_every_operation_never_answers_a_server_error(served_api: str) -> None:
    # GIVEN the served API, a registered user and the schema read by introspection
    token = register_token(served_api)
    schema = schemathesis.graphql.from_url(f"{served_api}/graphql")
    operations = [_loaded(result) for result in schema.get_all_operations()]
    report = FuzzReport()
    deadline = time.monotonic() + RUN_DEADLINE_SECONDS
    # WHEN every operation is fuzzed with generated arguments, with and without a token
    for operation in operations:
        fuzz_operation(operation, served_api, token, report, deadline)
    # THEN every operation was exercised and no answer was a 5xx
    labels = {op.label for op in operations}
    assert {"Mutation.register", "Mutation.createPost", "Query.searchUsers"} <= labels
    assert report.calls >= len(operations) * 2, report
    assert report.server_errors == [], report.server_errors
