"""What the API tells operators: a log line per request, metrics per operation, and a
readiness check that asks PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.routing import Route
from structlog.testing import capture_logs

from api.observe import readiness
from tests.integration.api.client import Api

QUERY = "query Mine { me { id } }"


@pytest.fixture
def info_logs() -> Iterator[None]:
    """INFO lines reach the capture whatever level an earlier test configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        yield
    finally:
        structlog.configure(**saved)


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.usefixtures("info_logs")
async def test_each_request_is_one_log_line_without_secrets_and_counted_by_operation(
    api: Api,
) -> None:
    # GIVEN a registered user
    token, _ = await api.register("observed@example.com")
    ok_before = _sample("socialpipe_api_operations_total", {"operation": "me", "status": "2xx"})
    bad = {"operation": "feed", "status": "4xx"}
    bad_before = _sample("socialpipe_api_operations_total", bad)

    # WHEN it asks for itself, then for a page too large, with a correlation id
    with capture_logs() as logs:
        await api.ok(QUERY, None, token)
        await api.call("{ feed(first: 1000) { nextCursor } }", None, token)

    # THEN each request is one INFO line with its status and no token or query text
    lines = [e for e in logs if e["event"] == "http request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("POST", "/graphql", 200),
        ("POST", "/graphql", 400),
    ]
    assert all(e["log_level"] == "info" and e["durationMs"] >= 0 for e in lines)
    assert token not in repr(logs) and "me { id }" not in repr(logs)
    # AND the operations are counted by root field and status class
    after = _sample("socialpipe_api_operations_total", {"operation": "me", "status": "2xx"})
    assert after == ok_before + 1
    assert _sample("socialpipe_api_operations_total", bad) == bad_before + 1
    count = _sample("socialpipe_api_operation_duration_seconds_count", {"operation": "me"})
    assert count >= 1


async def test_readyz_asks_postgresql_and_redis(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "dependencies": {"PostgreSQL": "up", "Redis": "up"},
    }


async def test_readyz_is_503_naming_what_does_not_answer_in_time() -> None:
    # GIVEN one dependency that answers, one that fails and one that hangs
    async def up() -> object:
        return 1

    async def down() -> object:
        raise ConnectionError("refused")

    async def hangs() -> object:
        await asyncio.Event().wait()
        return None

    app = Starlette(routes=[Route("/readyz", readiness({"A": up, "B": down, "C": hangs}))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        # WHEN a probe asks
        response = await client.get("/readyz")
    # THEN it is not ready, and says which are down
    assert response.status_code == 503
    assert response.json()["dependencies"] == {"A": "up", "B": "down", "C": "down"}
