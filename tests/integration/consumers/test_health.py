"""The health/metrics server over real HTTP on loopback."""

from __future__ import annotations

from config.health import HealthServer, respond, serving
from contracts.metrics import MESSAGES_RECEIVED
from tests.integration.consumers.helpers import http_get


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


async def test_port_zero_disables_the_server() -> None:
    # GIVEN settings with metrics_port 0 WHEN serving THEN no server is started
    async with serving(0) as server:
        assert server is None


def test_respond_ignores_query_strings() -> None:
    # GIVEN a probe with a query string WHEN routed THEN it reaches the endpoint
    assert respond("/healthz?verbose=1", lambda: False)[0] == 200
