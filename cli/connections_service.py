"""`socialpipe connections-service`: the internal gRPC Connections Service."""

from __future__ import annotations

import typer

from cli.common import fail, run, settings
from config.connections_service import run_connections_service
from config.settings import SettingsError, load_settings
from connections_service.server import AddressUnavailable


def connections_service(
    address: str | None = typer.Option(
        None,
        "--address",
        help="host:port to listen on (default: CONNECTIONS_SERVICE_ADDR, 127.0.0.1:50051).",
        show_default=False,
    ),
) -> None:
    """Serve who is connected to whom over gRPC, read from PostgreSQL, until SIGTERM.

    Methods (connections.proto): ListConnectionIds (a user's accepted connections,
    streamed in chunks of 5,000), AreConnected, GetPendingRequest; beside them the
    standard gRPC health check (grpc.health.v1.Health) and server reflection.
    Connection lists are read from DATABASE_READ_URL when it is set. Serves
    /metrics, /healthz and /readyz on METRICS_PORT (0 disables). On SIGTERM it
    reports NOT_SERVING, refuses new calls and lets calls in flight finish
    within SHUTDOWN_GRACE_SECONDS.
    """
    cfg = settings()
    if address is not None:
        try:  # validated as the variable is
            cfg = load_settings(connections_service_addr=address)
        except SettingsError as exc:
            fail(str(exc).replace("CONNECTIONS_SERVICE_ADDR", "--address"), code=2)
    try:
        run(run_connections_service(cfg))
    except AddressUnavailable as exc:
        fail(f"{exc}.")
