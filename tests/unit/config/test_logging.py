"""Every log line is one JSON object: ours, the libraries', and uncaught exceptions."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from config.logging import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging configured onto a buffer; the process-wide hooks are put back afterwards."""
    hooks = (sys.excepthook, threading.excepthook)
    out = io.StringIO()
    configure_logging("worker-feed", "INFO", stream=out)
    yield out
    sys.excepthook, threading.excepthook = hooks


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Each line parsed as JSON (a plain-text line fails the test here)."""
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "name",
    [
        "asyncpg",
        "botocore",
        "aiobotocore",
        "redis",
        "uvicorn.error",
        "faust",
        "aiokafka",
        "opensearch",
        "asyncio",
    ],
)
def test_a_library_exception_is_one_json_line_with_its_stack_trace(
    stream: io.StringIO, name: str
) -> None:
    # GIVEN a library logger (stdlib logging, not structlog)
    library = logging.getLogger(name)
    # WHEN it logs an error with the exception being handled
    try:
        _raise(ConnectionResetError(104, "Connection reset by peer"))
    except ConnectionResetError:
        library.error("connection lost", exc_info=True)
    # THEN exactly one JSON line carries the facts and the trace as one field
    [record] = lines(stream)
    assert record["logger"] == name
    assert record["message"] == "connection lost"
    assert record["level"] == "error"
    assert record["serviceName"] == "worker-feed"
    assert record["errorType"] == "ConnectionResetError"
    assert "in _raise" in record["stackTrace"]
    assert "Connection reset by peer" in record["stackTrace"]


def test_library_chatter_below_warning_stays_out(stream: io.StringIO) -> None:
    logging.getLogger("aiokafka").info("heartbeat sent")
    logging.getLogger("aiokafka").warning("group rebalancing")
    assert [r["message"] for r in lines(stream)] == ["group rebalancing"]


def test_our_exception_lines_carry_a_stack_trace(stream: io.StringIO) -> None:
    # GIVEN a structlog logger WHEN it logs an exception
    try:
        _raise(KeyError("postId"))
    except KeyError:
        structlog.get_logger("pipelines.feed").exception("feed event failed", postId="p-1")
    # THEN the same fields as a library's line
    [record] = lines(stream)
    assert (record["message"], record["postId"], record["errorType"]) == (
        "feed event failed",
        "p-1",
        "KeyError",
    )
    assert "in _raise" in record["stackTrace"]
    assert "exception" not in record and "exc_info" not in record


def test_secrets_and_url_passwords_never_reach_a_line(stream: io.StringIO) -> None:
    # GIVEN a secret field and URLs with passwords, from our code and a library's
    structlog.get_logger().warning(
        "connect failed", password="hunter2", dsn="postgresql://app:hunter2@db:5432/social"
    )
    logging.getLogger("redis").warning("cannot connect to redis://:hunter2@cache:6379/0")
    # THEN neither line holds the password, and the addresses are still there
    text = stream.getvalue()
    assert "hunter2" not in text
    first, second = lines(stream)
    assert first["password"] == "[redacted]"
    assert first["dsn"] == "postgresql://db:5432/social"
    assert second["message"] == "cannot connect to redis://cache:6379/0"


def test_an_uncaught_exception_is_logged_not_printed(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the interpreter hands an uncaught exception to its hook
    try:
        _raise(RuntimeError("boom"))
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    # THEN one critical JSON line, and nothing in plain text
    [record] = lines(stream)
    assert (record["level"], record["message"]) == ("critical", "uncaught exception")
    assert "RuntimeError: boom" in record["stackTrace"]
    assert capsys.readouterr().err == ""


def test_a_thread_exception_is_logged(stream: io.StringIO) -> None:
    thread = threading.Thread(target=_raise, args=(ValueError("in a thread"),), name="fetcher")
    thread.start()
    thread.join()
    [record] = lines(stream)
    assert (record["message"], record["thread"]) == ("uncaught exception in a thread", "fetcher")
    assert "ValueError: in a thread" in record["stackTrace"]


async def test_a_task_exception_never_retrieved_is_one_json_line(stream: io.StringIO) -> None:
    # GIVEN logging configured on a running loop (as every process does)
    loop = asyncio.get_running_loop()
    configure_logging("worker-feed", "INFO", stream=stream)
    try:
        # WHEN a task fails and nobody awaits it
        task = loop.create_task(_fail_soon())
        await asyncio.sleep(0.01)
        del task
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    # THEN asyncio's complaint is a JSON line with the trace
    [record] = lines(stream)
    assert record["message"] == "Task exception was never retrieved"
    assert record["errorType"] == "LookupError"
    assert "_fail_soon" in record["stackTrace"]
    assert "_fail_soon" in record["future"]


async def _fail_soon() -> None:
    raise LookupError("never awaited")
