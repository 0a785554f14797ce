"""Composition root of `socialpipe connections-service` (docs/connections-service.md).

PostgreSQL is probed first (the one dependency); connection lists are read
through `DATABASE_READ_URL` when it is set. `/metrics`, `/healthz` and
`/readyz` are served on `METRICS_PORT` like every other process; gRPC health
and reflection on the service's own address. SIGTERM (or SIGINT) drains:
health turns NOT_SERVING, new calls are refused, calls in flight get
`SHUTDOWN_GRACE_SECONDS` to finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

from config.health import serving
from config.logging import configure_logging
from config.search import open_read_pool
from config.settings import Settings
from config.signals import stop_on_signals
from config.startup import listening_socket, probe_postgres
from connections_service.postgres import PgConnectionReads
from connections_service.server import ConnectionsServer
from store.db import create_pool

# Calls in flight at once hold at most one connection each.
POOL_SIZE = 20


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (IPv6 hosts in brackets) as its host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def check_address_free(address: str) -> None:
    """Fail now, naming the address, when it cannot be bound (grpcio's own error says
    little); port 0 asks for any free port and is not checked."""
    host, port = split_address(address)
    if port != 0:
        listening_socket("Connections Service", host, port).close()


async def build_connections_server(
    stack: AsyncExitStack, settings: Settings, *, address: str | None = None
) -> ConnectionsServer:
    """The server over PostgreSQL pools that `stack` closes; not started yet."""
    primary = await create_pool(settings.database_url, max_size=POOL_SIZE)
    stack.push_async_callback(primary.close)
    replica = await open_read_pool(stack, settings, max_size=POOL_SIZE)
    return ConnectionsServer(
        PgConnectionReads(primary, replica), address=address or settings.connections_service_addr
    )


async def run_connections_service(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    started: Callable[[ConnectionsServer], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT or `stop`, then drain; `started` is told once it listens."""
    configure_logging("connections-service", settings.log_level)
    stop = stop or asyncio.Event()
    check_address_free(settings.connections_service_addr)
    await probe_postgres(settings)
    async with AsyncExitStack() as stack:
        server = await build_connections_server(stack, settings)
        with stop_on_signals(stop.set):
            metrics = settings.metrics_port
            async with serving(
                metrics,
                host=settings.metrics_host,
                ready=lambda: server.serving,
                commit=settings.build_commit,
            ):
                await server.start()
                if started is not None:
                    started(server)
                try:
                    await stop.wait()
                finally:
                    await server.stop(settings.shutdown_grace_seconds)
