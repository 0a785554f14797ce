"""The `socialpipe api` command: metrics on METRICS_PORT's server, never on the API port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from loadtest.processes import settings_env, socialpipe_command
from tests.integration.api.client import SECRET
from tests.settings import PortFactory, SettingsFactory


@pytest.fixture
async def api_process(
    db: asyncpg.Pool, settings_factory: SettingsFactory, port_factory: PortFactory
) -> AsyncIterator[tuple[str, str]]:
    """The real command on free loopback ports: (API base URL, metrics base URL)."""
    api_port, metrics_port = port_factory(), port_factory()
    env = settings_env(
        settings_factory(api_token_secret=SECRET),
        METRICS_PORT=str(metrics_port),
        METRICS_HOST="127.0.0.1",
    )
    argv = ["api", "--host", "127.0.0.1", "--port", str(api_port)]
    proc = await asyncio.create_subprocess_exec(
        socialpipe_command(), *argv, env=env, stderr=asyncio.subprocess.PIPE
    )
    api, metrics = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                assert proc.returncode is None, "socialpipe api exited at start"
                try:
                    if (await client.get(f"{api}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "socialpipe api did not start"
                    await asyncio.sleep(0.1)
        yield api, metrics
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


async def test_metrics_are_served_on_the_metrics_port_only(
    api_process: tuple[str, str],
) -> None:
    api, metrics = api_process
    async with httpx.AsyncClient() as client:
        public = await client.get(f"{api}/metrics")
        private = await client.get(f"{metrics}/metrics")
        answered = await client.post(f"{api}/graphql", json={"query": "{ __typename }"})
    assert public.status_code == 404
    assert private.status_code == 200
    assert "python_gc_objects_collected_total" in private.text
    assert answered.json() == {"data": {"__typename": "Query"}}
