"""Start-up failures name the dependency or port, its address and the reason, never a password."""

from __future__ import annotations

import io
import socket
import sys
import threading
from collections.abc import Iterator

import asyncpg
import orjson
import pytest
import redis.exceptions
from botocore.exceptions import EndpointConnectionError

from cli.common import explain
from config.health import HealthServer
from config.logging import configure_logging, redact_url
from config.startup import (
    DependencyStartError,
    PortUnavailable,
    dependency,
    host_port,
    listening_socket,
    reason_of,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    hooks = (sys.excepthook, threading.excepthook)
    out = io.StringIO()
    configure_logging("worker-feed", "INFO", stream=out)
    yield out
    sys.excepthook, threading.excepthook = hooks


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port some other socket listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "default", "expected"),
    [
        ("postgresql://app:secret@db.internal:6543/social", 5432, "db.internal:6543"),
        ("postgresql://postgres@127.0.0.1/socialpipe", 5432, "127.0.0.1:5432"),
        ("postgresql:///socialpipe?host=/run/postgresql", 5432, "/run/postgresql"),
        ("postgresql://u:p@h1:5432,h2:5433/db", 5432, "h1:5432,h2:5433"),
        ("redis://:secret@[::1]:6380/0", 6379, "[::1]:6380"),
        ("rediss://cache.internal/1", 6379, "cache.internal:6379"),
    ],
)
def test_an_address_is_host_and_port_without_credentials(
    url: str, default: int, expected: str
) -> None:
    assert host_port(url, default) == expected


def test_url_passwords_are_redacted_wherever_they_appear() -> None:
    text = "failed: postgresql://app:s3cret@db:5432/x and http://admin:pw@os:9200/ and a@b.c"
    assert redact_url(text) == "failed: postgresql://db:5432/x and http://os:9200/ and a@b.c"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5999)"),
            "connection refused",
        ),
        (TimeoutError(), "timed out"),
        (socket.gaierror(-2, "Name or service not known"), "host not found"),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed"), "connection refused"),
    ],
)
def test_the_reason_is_short(exc: BaseException, reason: str) -> None:
    assert reason_of(exc) == reason


def test_the_reason_of_a_wrapped_error_comes_from_the_os_error_inside() -> None:
    # GIVEN redis's own error raised from the refused connect
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError as inner:
            raise redis.exceptions.ConnectionError("Error 111 connecting to x:6399.") from inner
    except redis.exceptions.ConnectionError as exc:
        # THEN the reason is the OS's
        assert reason_of(exc) == "connection refused"


def test_a_refused_connect_becomes_one_sentence_and_one_log_line(stream: io.StringIO) -> None:
    # WHEN a connect inside `dependency` is refused
    with pytest.raises(DependencyStartError) as raised, dependency("PostgreSQL", "127.0.0.1:5999"):
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5999)")
    # THEN the sentence names it, the CLI prints it, and the log line has the same facts
    sentence = "cannot reach PostgreSQL at 127.0.0.1:5999 (connection refused)."
    assert raised.value.sentence == sentence
    assert explain(raised.value) == sentence
    [line] = stream.getvalue().splitlines()
    record = orjson.loads(line)
    assert (record["dependency"], record["address"], record["errorMessage"]) == (
        "PostgreSQL",
        "127.0.0.1:5999",
        "connection refused",
    )
    assert record["level"] == "error" and "stackTrace" not in record


def test_a_login_the_server_turns_away_is_said_so(stream: io.StringIO) -> None:
    with pytest.raises(DependencyStartError) as raised, dependency("PostgreSQL", "db:5432"):
        raise asyncpg.InvalidPasswordError('password authentication failed for user "app"')
    assert raised.value.sentence == (
        "PostgreSQL at db:5432 refused the connection"
        ' (password authentication failed for user "app").'
    )


def test_an_aws_endpoint_error_names_the_service(stream: io.StringIO) -> None:
    with pytest.raises(DependencyStartError) as raised, dependency("SQS", "http://127.0.0.1:4566"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/")
    assert raised.value.sentence.startswith("cannot reach SQS at http://127.0.0.1:4566 (")


def test_other_errors_pass_through_unchanged(stream: io.StringIO) -> None:
    # A bug is not disguised as an outage.
    with pytest.raises(KeyError), dependency("Redis", "127.0.0.1:6379"):
        raise KeyError("k")
    # A narrowed block leaves errors of other clients to their own handling.
    with pytest.raises(ConnectionRefusedError), dependency("SNS", "x", (EndpointConnectionError,)):
        raise ConnectionRefusedError(111, "refused")
    assert stream.getvalue() == ""


def test_an_occupied_port_is_named(stream: io.StringIO, occupied: int) -> None:
    with pytest.raises(PortUnavailable) as raised:
        listening_socket("API", "127.0.0.1", occupied)
    assert raised.value.sentence == f"the API port 127.0.0.1:{occupied} is already in use."
    assert orjson.loads(stream.getvalue())["port"] == occupied


async def test_the_health_server_names_its_occupied_port(
    stream: io.StringIO, occupied: int
) -> None:
    server = HealthServer(port=occupied, host="127.0.0.1")
    with pytest.raises(PortUnavailable) as raised:
        await server.start()
    assert explain(raised.value) == f"the metrics port 127.0.0.1:{occupied} is already in use."
