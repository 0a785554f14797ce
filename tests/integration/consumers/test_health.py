"""The health/metrics server over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from importlib import metadata

from config.health import HealthServer, record_build_info, serving
from contracts.metrics import MESSAGES_RECEIVED
from tests.integration.consumers.helpers import http_get


@contextlib.asynccontextmanager
async def _loopback(commit: str = "unknown") -> AsyncIterator[HealthServer]:
    """A health server on a free loopback port, as `serving` starts one."""
    record_build_info(commit)
    server = HealthServer(port=0, host="127.0.0.1")
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def test_health_server_answers_probes_and_metrics() -> None:
    # GIVEN a server whose readiness flips, and a counter that has moved
    state = {"ready": False}
    MESSAGES_RECEIVED.labels("health-test").inc()
    server = HealthServer(port=0, host="127.0.0.1", ready=lambda: state["ready"])
    await server.start()
    try:
        # WHEN probed before and after the consumer is ready
        healthz = await http_get(server.port, "/healthz")
        not_ready = await http_get(server.port, "/readyz")
        state["ready"] = True
        ready = await http_get(server.port, "/readyz")
        metrics = await http_get(server.port, "/metrics")
        missing = await http_get(server.port, "/nope")
    finally:
        await server.close()
    # THEN liveness is 200, readiness follows the callback, metrics are exposed
    assert healthz[0] == 200
    assert not_ready[0] == 503
    assert ready[0] == 200
    assert metrics[0] == 200
    assert 'socialpipe_messages_received_total{queue="health-test"}' in metrics[1]
    assert missing[0] == 404
    # AND once closed, nothing answers on the port any more
    assert (await http_get(server.port, "/healthz"))[0] == 0


async def test_port_zero_disables_the_server() -> None:
    # GIVEN settings with metrics_port 0 WHEN serving THEN no server is started
    async with serving(0) as server:
        assert server is None


async def test_probes_with_a_query_string_reach_their_endpoint() -> None:
    # GIVEN a running server WHEN probed with a query string THEN the path decides
    async with _loopback() as server:
        assert (await http_get(server.port, "/healthz?verbose=1"))[0] == 200
        assert (await http_get(server.port, "/readyz?x=1"))[0] == 200


async def test_build_info_names_the_version_and_commit() -> None:
    # GIVEN a server started for commit abc123 WHEN scraped
    async with _loopback(commit="abc123") as server:
        _, body = await http_get(server.port, "/metrics")
    # THEN socialpipe_build_info carries the installed version and that commit
    version = metadata.version("socialpipe")
    assert f'socialpipe_build_info{{commit="abc123",version="{version}"}} 1.0' in body


async def test_the_server_leaves_sigterm_to_the_process() -> None:
    # GIVEN the process's own SIGTERM handler
    got = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, got.set)
    try:
        # WHEN the health server runs and the process receives SIGTERM
        async with _loopback() as server:
            signal.raise_signal(signal.SIGTERM)
            await asyncio.wait_for(got.wait(), 5)
            # THEN the process's handler ran and the server still answers
            assert (await http_get(server.port, "/healthz"))[0] == 200
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
