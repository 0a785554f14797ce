"""`socialpipe connections-service` as a real process on a free loopback port.

A plain module (not a conftest) so that tests and fixtures import the same
builder. The process can be SIGKILLed and started again on the same address,
as a crashed pod is restarted behind its Service.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.processes import socialpipe_command
from tests.settings import free_port

START_TIMEOUT = 20.0


def command() -> list[str]:
    return [socialpipe_command()]


def health_check(
    channel: grpc.Channel, service: str = "", timeout: float = 5.0
) -> health_pb2.HealthCheckResponse:
    """One Check through the stock `grpcio-health-checking` client stub."""
    stub = health_pb2_grpc.HealthStub(channel)
    # typeshed's HealthStub declares only its constructor, not the generated methods.
    reply: health_pb2.HealthCheckResponse = stub.Check(  # type: ignore[attr-defined]
        health_pb2.HealthCheckRequest(service=service), timeout=timeout
    )
    return reply


class ServiceProcess:
    """One Connections Service process over `database_url`; `start` waits until SERVING."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CONNECTIONS_SERVICE_ADDR": self.address,
            "METRICS_PORT": str(self.metrics_port),
            "METRICS_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self._logs = Path(tempfile.mkdtemp(prefix="connections-service-")) / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self._logs.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command(), "connections-service"],
                env=self._env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.wait_serving()
        return self

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with grpc.insecure_channel(self.address) as channel:
            while True:
                assert self.proc is not None and self.proc.poll() is None, self.stderr()
                try:
                    reply = health_check(channel, timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"not serving within {START_TIMEOUT} s: {self.stderr()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, as a crashed node."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, wait: float = 15.0) -> int:
        """SIGTERM and the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(wait)

    def stderr(self) -> str:
        return self._logs.read_text(errors="replace") if self._logs.exists() else ""

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._logs.parent, ignore_errors=True)


ServiceFactory = Callable[..., ServiceProcess]
