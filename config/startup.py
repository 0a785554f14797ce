"""Start-up failures that name what is missing: a dependency and its address, or a port.

A process that cannot reach PostgreSQL at start should say exactly that, not
"cannot reach a service". `dependency(name, address)` wraps a start-up connect
and turns connection errors into a `DependencyStartError`; `check_dependencies`
probes the stores a process needs before anything else is built, so the error
names the right one even where a client connects lazily (Redis). Each failure
is logged as one JSON line and carries the one sentence the CLI prints.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

import asyncpg
import redis.exceptions
import structlog
from botocore.exceptions import ConnectionError as BotoConnectionError

from config.logging import redact_url
from config.settings import Settings

log = structlog.get_logger("config.startup")

PROBE_TIMEOUT: Final = 10.0
# The server is up but turns this client away: the address is right, the login is not.
_REFUSALS: Final = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    redis.exceptions.AuthenticationError,
)


class StartupError(Exception):
    """A process could not start; `sentence` is what the operator reads."""

    @property
    def sentence(self) -> str:
        raise NotImplementedError

    def fields(self) -> dict[str, object]:
        """The same facts as the sentence, as log fields."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.sentence


@dataclass(eq=False)
class DependencyStartError(StartupError):
    """A dependency did not answer (or turned the connection away) at start."""

    name: str
    address: str
    reason: str
    refused: bool = False

    @property
    def sentence(self) -> str:
        if self.refused:
            return f"{self.name} at {self.address} refused the connection ({self.reason})."
        return f"cannot reach {self.name} at {self.address} ({self.reason})."

    def fields(self) -> dict[str, object]:
        return {"dependency": self.name, "address": self.address, "errorMessage": self.reason}


@dataclass(eq=False)
class PortUnavailable(StartupError):
    """A port this process serves on cannot be bound."""

    purpose: str
    host: str
    port: int
    reason: str
    in_use: bool = False

    @property
    def sentence(self) -> str:
        where = f"the {self.purpose} port {self.host}:{self.port}"
        if self.in_use:
            return f"{where} is already in use."
        return f"cannot listen on {where} ({self.reason})."

    def fields(self) -> dict[str, object]:
        return {
            "purpose": self.purpose,
            "host": self.host,
            "port": self.port,
            "errorMessage": self.reason,
        }


@dataclass(eq=False)
class MissingResource(StartupError):
    """Something the set-up step creates (a topic, a queue) does not exist."""

    what: str
    address: str
    remedy: str

    @property
    def sentence(self) -> str:
        return f"{self.what} does not exist at {self.address}; {self.remedy}."

    def fields(self) -> dict[str, object]:
        return {"missing": self.what, "address": self.address}


def host_port(url: str, default_port: int) -> str:
    """`host:port` of a PostgreSQL or Redis URL, never its credentials."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if not netloc:
        # A Unix socket: `postgresql:///db?host=/run/postgresql` or `unix:///tmp/redis.sock`.
        return parse_qs(parts.query).get("host", [parts.path or "localhost"])[0]
    # Several hosts, or one with its port (`[::1]:5432` has colons of its own).
    if "," in netloc or ":" in netloc.rpartition("]")[2]:
        return netloc
    return f"{netloc}:{default_port}"


def aws_address(settings: Settings) -> str:
    """The endpoint an AWS client talks to: the emulator's URL, or the region's."""
    return redact_url(settings.aws_endpoint_url or f"AWS {settings.aws_region}")


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (
        OSError,
        TimeoutError,
        asyncpg.PostgresConnectionError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        BotoConnectionError,
        *_REFUSALS,
    )
    # Only a process that loaded the OpenSearch client can see its errors; importing
    # it here would cost every other process its start-up time.
    opensearch = sys.modules.get("opensearchpy.exceptions")
    if opensearch is not None:
        errors += (opensearch.ConnectionError,)
    return errors


def os_reason(exc: BaseException) -> str | None:
    """A short reason ("connection refused", "timed out") for an OS-level failure, else None."""
    if isinstance(exc, socket.gaierror):
        return "host not found"
    if isinstance(exc, TimeoutError) and not getattr(exc, "errno", None):
        return "timed out"
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and isinstance(code, int) and code > 0:
        # Not `exc.strerror`: uvloop puts "Connect call failed (addr)" there.
        return os.strerror(code).lower()
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: causes, contexts and exceptions held in its args."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]


def reason_of(exc: BaseException) -> str:
    """A short, password-free reason for a failed connect."""
    for cause in _causes(exc):
        found = os_reason(cause)
        if found:
            return found
    text = str(exc) or type(exc).__name__
    if "connect call failed" in text.lower():
        return "connection refused"
    return redact_url(text).rstrip(".")


def said(sentence: str, **fields: object) -> str:
    """Log `sentence` as the process's one JSON error line; return it for the CLI to print.

    For start-up failures found outside `dependency` (a missing queue or topic), so they
    reach the log as the others do.
    """
    log.error(sentence.rstrip("."), **fields)
    return sentence


def report(error: StartupError) -> StartupError:
    """Log `error` as one JSON line (no stack: the facts are the message) and return it."""
    log.error(error.sentence.rstrip("."), **error.fields())
    return error


@contextmanager
def dependency(
    name: str, address: str, errors: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Turn a connection error raised inside the block into a `DependencyStartError`.

    `errors` narrows what counts, for a block that also talks to something else.
    """
    caught = errors or _connection_errors()
    try:
        yield
    except caught as exc:
        reason = reason_of(exc)
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            reason += "; `socialpipe migrate up` creates it"
        refused = isinstance(exc, _REFUSALS)
        raise report(DependencyStartError(name, address, reason, refused)) from None


@contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Silence a library that logs each failed request: a failed probe is reported once, by
    `dependency`, with the name and address the library's line lacks."""
    library = logging.getLogger(logger)
    before = library.level
    library.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        library.setLevel(before)


def aws_dependency(name: str, settings: Settings) -> AbstractContextManager[None]:
    """`dependency` for an AWS service (SQS, SNS): only botocore's connection errors."""
    return dependency(name, aws_address(settings), (BotoConnectionError,))


def port_unavailable(purpose: str, host: str, port: int, exc: OSError) -> StartupError:
    """The logged `PortUnavailable` for a failed bind of `host:port`."""
    in_use = exc.errno == errno.EADDRINUSE
    return report(PortUnavailable(purpose, host, port, reason_of(exc), in_use))


def listening_socket(purpose: str, host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket on `host:port`, or a `PortUnavailable` naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As asyncio's own servers do, so a restart never waits out TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise port_unavailable(purpose, host, port, exc) from None
    return sock


async def probe_postgres(settings: Settings) -> None:
    with dependency("PostgreSQL", host_port(settings.database_url, 5432)):
        conn = await asyncpg.connect(settings.database_url, timeout=PROBE_TIMEOUT)
        await conn.close()


async def probe_redis(settings: Settings) -> None:
    """One node answers PING; for a `redis+cluster://` URL, any one of its seed nodes."""
    import redis.asyncio as aioredis

    from config.clients import cluster_startup_nodes, is_cluster_url

    url, wait = settings.redis_url, PROBE_TIMEOUT
    if is_cluster_url(url):
        clients = [
            aioredis.Redis(host=host, port=port, socket_connect_timeout=wait, socket_timeout=wait)
            for host, port in cluster_startup_nodes(url)
        ]
    else:
        clients = [aioredis.Redis.from_url(url, socket_connect_timeout=wait, socket_timeout=wait)]
    try:
        with dependency("Redis", host_port(url, 6379)):
            for client in clients[:-1]:
                with suppress(*_connection_errors()):
                    await client.ping()
                    return
            await clients[-1].ping()
    finally:
        for client in clients:
            await client.aclose()


async def probe_search(settings: Settings) -> None:
    """OpenSearch when it is the backend; the PostgreSQL backend is probed as PostgreSQL."""
    if settings.search_backend != "opensearch":
        return
    from opensearchpy import AsyncOpenSearch

    client = AsyncOpenSearch(hosts=[settings.opensearch_url], max_retries=0, timeout=PROBE_TIMEOUT)
    try:
        name = "the search backend (OpenSearch)"
        with dependency(name, redact_url(settings.opensearch_url)), quiet("opensearch"):
            await client.info()
    finally:
        await client.close()


_NEEDS: Final = {
    "feed": ("PostgreSQL", "Redis"),
    "search": ("PostgreSQL", "search"),
    "notifications": ("PostgreSQL", "Redis"),
    "relay": ("PostgreSQL",),
    "api": ("PostgreSQL", "Redis", "search"),
}
_PROBES: Final = {"PostgreSQL": probe_postgres, "Redis": probe_redis, "search": probe_search}


def needs(process: str) -> Sequence[str]:
    """The stores `process` (a pipeline name, "relay" or "api") connects to at start."""
    return _NEEDS.get(process, ())


async def check_dependencies(settings: Settings, process: str) -> None:
    """Probe each store `process` needs, in order; the first that fails stops the start."""
    for name in needs(process):
        await _PROBES[name](settings)
