"""A tiny HTTP server for probes and scraping: `/metrics`, `/healthz`, `/readyz`.

Plain asyncio streams, so no web framework is needed in a worker process.
`/healthz` answers while the event loop runs; `/readyz` asks a callback (for a
worker: polling, with its dependencies answering).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.startup import port_unavailable

log = structlog.get_logger("config.health")

READ_TIMEOUT: Final = 5.0
Response = tuple[int, str, bytes]


def _always_ready() -> bool:
    return True


def respond(path: str, ready: Callable[[], bool]) -> Response:
    """Status, content type and body for a GET of `path` (pure)."""
    route = path.split("?", 1)[0]
    if route == "/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest()
    if route == "/healthz":
        return 200, "text/plain", b"ok\n"
    if route == "/readyz":
        return (200, "text/plain", b"ready\n") if ready() else (503, "text/plain", b"not ready\n")
    return 404, "text/plain", b"not found\n"


_REASONS: Final = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class HealthServer:
    """Serves the three endpoints on `host:port` until closed."""

    def __init__(
        self, *, port: int, host: str = "0.0.0.0", ready: Callable[[], bool] = _always_ready
    ) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0 in tests)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen, or fail with a `PortUnavailable` naming the metrics port."""
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as exc:
            raise port_unavailable("metrics", self._host, self._port, exc) from None
        log.info("health server listening", host=self._host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = respond(path, self._ready)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a half-open or malformed probe: just hang up
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    line = (await reader.readline()).decode("latin-1").split()
    if len(line) < 2:
        raise ValueError("malformed request line")
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass  # headers are not needed
    return line[0].upper(), line[1]


@contextlib.asynccontextmanager
async def serving(
    port: int, *, host: str = "0.0.0.0", ready: Callable[[], bool] = _always_ready
) -> AsyncIterator[HealthServer | None]:
    """Run the server for the duration of the block; port 0 from settings disables it."""
    if port == 0:
        yield None
        return
    server = HealthServer(port=port, host=host, ready=ready)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
