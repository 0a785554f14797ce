"""The probe and scrape endpoints of a worker or the relay: `/metrics`, `/healthz`, `/readyz`.

A small Starlette application served by uvicorn on `METRICS_PORT`: `/metrics` is
prometheus-client's own ASGI app, `/healthz` answers while the event loop runs,
`/readyz` asks a callback (for a worker: polling, with its dependencies
answering). The API serves the same paths on its own port (api/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import metadata
from typing import Final

import structlog
import uvicorn
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from config.startup import listening_socket
from contracts.metrics import BUILD_INFO

log = structlog.get_logger("config.health")

# How long a closing server waits for a scrape in progress before it hangs up.
CLOSE_GRACE_SECONDS: Final = 2.0


def _always_ready() -> bool:
    return True


def record_build_info(commit: str) -> None:
    """Set `socialpipe_build_info{version, commit}` to 1 for this process's release."""
    try:
        version = metadata.version("socialpipe")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    BUILD_INFO.clear()
    BUILD_INFO.labels(version=version, commit=commit).set(1)


class _Asgi:
    """An ASGI app as a route's endpoint (a plain function would be taken for a request
    handler): `/metrics` answers at its own path, with no redirect to `/metrics/`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def health_app(ready: Callable[[], bool] = _always_ready) -> Starlette:
    """The ASGI application behind the health server (also usable in-process in tests)."""

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> PlainTextResponse:
        if ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            # prometheus-client's app: text or OpenMetrics as asked, gzip, `name[]` filters.
            Route("/metrics", _Asgi(make_asgi_app()), methods=["GET", "HEAD"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process's own (config/signals.py) stay in
    charge of SIGTERM and SIGINT, so a worker drains instead of uvicorn exiting."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    """Serves the three endpoints on `host:port` until closed."""

    def __init__(
        self, *, port: int, host: str = "0.0.0.0", ready: Callable[[], bool] = _always_ready
    ) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._bound = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0 in tests)."""
        return self._bound

    async def start(self) -> None:
        """Listen, or fail with a `PortUnavailable` naming the metrics port."""
        # Bound here, before uvicorn starts, so a busy port fails the start with one
        # sentence, and probes that arrive while uvicorn starts wait in the backlog.
        sock = listening_socket("metrics", self._host, self._port)
        self._bound = int(sock.getsockname()[1])
        config = uvicorn.Config(
            health_app(self._ready),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(CLOSE_GRACE_SECONDS),
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._serve(self._server, sock), name="health-server")
        log.info("health server listening", host=self._host, port=self.port)

    @staticmethod
    async def _serve(server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()

    async def close(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def serving(
    port: int,
    *,
    host: str = "0.0.0.0",
    ready: Callable[[], bool] = _always_ready,
    commit: str = "unknown",
) -> AsyncIterator[HealthServer | None]:
    """Run the server for the duration of the block; port 0 from settings disables it.

    `commit` (settings.build_commit) labels `socialpipe_build_info`.
    """
    record_build_info(commit)
    if port == 0:
        yield None
        return
    server = HealthServer(port=port, host=host, ready=ready)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
