"""The order in which `ProcessGroup.stop` ends its children (loadtest/processes.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from config.settings import Settings
from loadtest.processes import CONNECTIONS_SERVICE, Child, ProcessGroup

# A child that notes when SIGTERM reached it and when it exited, after `drain` seconds.
CHILD = """
import signal, sys, time
out, drain = sys.argv[1], float(sys.argv[2])
def stop(*_):
    with open(out, "a") as f:
        f.write(f"term {time.time()}\\n")
    time.sleep(drain)
    with open(out, "a") as f:
        f.write(f"exit {time.time()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(out, "a").close()
while True:
    time.sleep(0.05)
"""


async def _spawn(group: ProcessGroup, name: str, folder: Path, drain: float) -> Path:
    out = folder / f"{name}.times"
    child = Child(name, [], folder / f"{name}.log", None)
    child.proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(out), str(drain)
    )
    group.children.append(child)
    return out


def _times(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


async def _started(paths: list[Path]) -> None:
    deadline = time.monotonic() + 10
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, "the children did not start"
        await asyncio.sleep(0.02)


async def test_the_connections_service_stops_after_the_workers_have_drained(
    tmp_path: Path, settings: Settings
) -> None:
    # GIVEN a group with a worker that takes a moment to drain, an API and the service
    group = ProcessGroup(settings, tmp_path)
    worker = await _spawn(group, "worker-feed-0", tmp_path, drain=0.5)
    api = await _spawn(group, "api", tmp_path, drain=0.0)
    service = await _spawn(group, CONNECTIONS_SERVICE, tmp_path, drain=0.0)
    await _started([worker, api, service])

    # WHEN the group stops
    killed = await group.stop(grace=10)

    # THEN everyone exited on SIGTERM, and the service heard it only after the worker left
    assert killed == []
    assert all(c.proc is not None and c.proc.returncode == 0 for c in group.children)
    assert _times(service)["term"] >= _times(worker)["exit"]
    assert _times(api)["term"] < _times(worker)["exit"]
