"""A process that cannot start says which dependency or port, at which address, and exits 1.

Each test runs the real command in a subprocess, as an operator would, and
reads its stderr: one sentence for the operator, JSON lines for the log, no
traceback and no password.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from config.settings import Settings
from consumers.topology import ensure_topology
from tests.settings import PortFactory

PASSWORD = "hunter2-startup"


def run_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`socialpipe ARGS` against the test services, with `env` overriding them."""
    base = {
        **os.environ,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url or "",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "METRICS_PORT": "0",
        "METRICS_HOST": "127.0.0.1",
        "RECEIVE_WAIT_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def failed_with(done: subprocess.CompletedProcess[str], sentence: str) -> dict[str, Any]:
    """Assert exit 1, `sentence` on stderr, only JSON besides it; return the error log line."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    said = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert said == [f"socialpipe: {sentence}"], done.stderr
    logged = [orjson.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    errors: list[dict[str, Any]] = [r for r in logged if r["level"] == "error"]
    assert [r["message"] for r in errors] == [sentence.rstrip(".")], done.stderr
    return errors[0]


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port another socket holds for the duration of the test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_worker_names_postgres_when_it_is_down(
    settings: Settings, port_factory: PortFactory
) -> None:
    # GIVEN a DATABASE_URL (with a password) at a port nobody listens on
    port = port_factory()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/socialpipe"
    # WHEN a feed worker starts
    done = run_cli(settings, "worker", "feed", "--burst", DATABASE_URL=url)
    # THEN it names PostgreSQL and its address, in the sentence and the log line
    record = failed_with(done, f"cannot reach PostgreSQL at 127.0.0.1:{port} (connection refused).")
    assert (record["dependency"], record["address"]) == ("PostgreSQL", f"127.0.0.1:{port}")
    assert record["serviceName"] == "worker-feed"


def test_worker_names_redis_when_it_is_down(settings: Settings, port_factory: PortFactory) -> None:
    port = port_factory()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    done = run_cli(settings, "worker", "feed", "--burst", REDIS_URL=url)
    record = failed_with(done, f"cannot reach Redis at 127.0.0.1:{port} (connection refused).")
    assert (record["dependency"], record["errorMessage"]) == ("Redis", "connection refused")


def test_worker_names_sqs_when_the_endpoint_is_down(
    settings: Settings, port_factory: PortFactory
) -> None:
    dead = f"http://127.0.0.1:{port_factory()}"
    done = run_cli(settings, "worker", "notifications", "--burst", AWS_ENDPOINT_URL=dead)
    failed_with(done, f"cannot reach SQS at {dead} (connection refused).")


def test_worker_names_opensearch_when_it_is_the_backend_and_down(
    settings: Settings, port_factory: PortFactory
) -> None:
    port = port_factory()
    done = run_cli(
        settings,
        "worker",
        "search",
        "--burst",
        SEARCH_BACKEND="opensearch",
        OPENSEARCH_URL=f"http://admin:{PASSWORD}@127.0.0.1:{port}",
    )
    failed_with(
        done,
        f"cannot reach the search backend (OpenSearch) at http://127.0.0.1:{port}"
        " (connection refused).",
    )


def test_worker_names_its_missing_queue(settings: Settings, aws: str) -> None:
    # GIVEN SQS up but `socialpipe queues create` never ran
    done = run_cli(settings, "worker", "notifications", "--burst")
    # THEN the worker logs and says which queue (its own or its DLQ) is missing, and how
    # to make it
    name = re.search(r"Queue '([^']+)' does not exist", done.stderr)
    assert name and name[1] in (q := settings.notifications_queue, f"{q}-dlq"), done.stderr
    failed_with(done, f"Queue {name[1]!r} does not exist; run `socialpipe queues create` first.")


@pytest.mark.parametrize("command", [["worker", "feed", "--burst"], ["relay", "--burst"]])
def test_kafka_processes_name_kafka_when_it_is_down(
    settings: Settings, port_factory: PortFactory, command: list[str]
) -> None:
    # GIVEN the Kafka transport and no broker at its address
    servers = f"127.0.0.1:{port_factory()}"
    done = run_cli(settings, *command, EVENT_TRANSPORT="kafka", KAFKA_BOOTSTRAP_SERVERS=servers)
    # THEN the process logs one error line naming Kafka (not the client library's own) and
    # says the same sentence
    assert done.returncode == 1, done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1 and said[0].startswith(f"socialpipe: cannot reach Kafka at {servers}")
    errors = [orjson.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["message"] for e in errors] == [said[0].removeprefix("socialpipe: ").rstrip(".")]
    assert errors[0]["serviceName"] == ("relay" if command[0] == "relay" else "worker-feed")


def test_relay_names_sns_when_the_endpoint_is_down(
    settings: Settings, port_factory: PortFactory
) -> None:
    dead = f"http://127.0.0.1:{port_factory()}"
    done = run_cli(settings, "relay", "--burst", AWS_ENDPOINT_URL=dead)
    failed_with(done, f"cannot reach SNS at {dead} (connection refused).")


async def test_worker_names_its_occupied_metrics_port(
    sqs: Any, sns: Any, settings: Settings, occupied: int
) -> None:
    # GIVEN the queues exist and another process holds the metrics port
    await ensure_topology(sqs, sns, settings)
    # WHEN a feed worker starts on that port
    done = run_cli(settings, "worker", "feed", "--burst", METRICS_PORT=str(occupied))
    # THEN it says the port is taken
    record = failed_with(done, f"the metrics port 127.0.0.1:{occupied} is already in use.")
    assert record["port"] == occupied


def test_relay_names_postgres_when_it_is_down(
    settings: Settings, port_factory: PortFactory
) -> None:
    port = port_factory()
    done = run_cli(
        settings, "relay", "--burst", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/x"
    )
    failed_with(done, f"cannot reach PostgreSQL at 127.0.0.1:{port} (connection refused).")


def test_relay_names_the_missing_topic_instead_of_creating_it(settings: Settings, aws: str) -> None:
    # GIVEN PostgreSQL and SNS up, but `socialpipe queues create` never ran
    done = run_cli(settings, "relay", "--burst")
    # THEN the relay says which topic is missing and how to make it, and creates nothing
    record = failed_with(
        done,
        f"the SNS topic {settings.events_topic} does not exist at {aws}; "
        "`socialpipe queues create` creates it.",
    )
    assert record["missing"] == f"the SNS topic {settings.events_topic}"


def test_api_names_redis_when_it_is_down(settings: Settings, port_factory: PortFactory) -> None:
    port = port_factory()
    done = run_cli(
        settings, "api", "--port", str(port_factory()), REDIS_URL=f"redis://127.0.0.1:{port}"
    )
    failed_with(done, f"cannot reach Redis at 127.0.0.1:{port} (connection refused).")


def test_api_names_its_occupied_port(settings: Settings, occupied: int) -> None:
    done = run_cli(settings, "api", "--port", str(occupied))
    failed_with(done, f"the API port 127.0.0.1:{occupied} is already in use.")


def test_api_started_on_its_own_socket_serves_and_logs_only_json(
    settings: Settings, port_factory: PortFactory
) -> None:
    # GIVEN every dependency up WHEN the API starts
    port = port_factory()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    env["LOG_LEVEL"] = "INFO"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = _poll_healthz(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    # THEN it answered, and every line it wrote was JSON
    assert status == 200, stderr
    assert all(line.startswith("{") for line in stderr.splitlines()), stderr


def _poll_healthz(port: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                return int(answer.status)
        except OSError:
            time.sleep(0.1)
    return 0
