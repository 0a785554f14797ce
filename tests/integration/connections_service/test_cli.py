"""`socialpipe connections-service` start-up failures: one sentence, the right exit code."""

from __future__ import annotations

import os
import subprocess

from typer.testing import CliRunner

from cli.main import app
from tests.integration.connections_service.servers import ServiceProcess, command


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), "connections-service", *args],
        env={**os.environ, "METRICS_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_address_in_use_is_named(connections_service: ServiceProcess, database_url: str) -> None:
    done = run("--address", connections_service.address, DATABASE_URL=database_url)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"socialpipe: the Connections Service port {connections_service.address} is already in use."
    )


def test_a_malformed_address_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["connections-service", "--address", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "socialpipe: Invalid --address: expected host:port, e.g. 127.0.0.1:50051, got 'nope'."
    )


def test_help_names_the_methods_and_the_drain() -> None:
    result = CliRunner().invoke(app, ["connections-service", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("ListConnectionIds", "AreConnected", "GetPendingRequest", "SIGTERM"):
        assert word in text
