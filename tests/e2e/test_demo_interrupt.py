"""Ctrl-C during `socialpipe demo`: every process it started stops, then it exits 130.

The demo runs in its own session, as under a terminal, and SIGINT goes to its
whole process group, as a terminal's Ctrl-C does. The processes and listening
ports are read from /proc before the signal, so the test checks what the demo
really started rather than what it says it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from store.db import drop_database, with_database
from tests.e2e.test_demo import socialpipe
from tests.settings import SettingsFactory, make_settings

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")

DEMO_DB = f"socialpipe_demo_sigint_{os.getpid()}"
# API, relay, three workers and the SQS/SNS emulator.
CHILDREN = 6


@pytest.fixture
async def demo_database(settings_factory: SettingsFactory) -> AsyncIterator[str]:
    url = with_database(settings_factory().database_url, DEMO_DB)
    await drop_database(url)  # posts left by an aborted run would look like load
    yield DEMO_DB
    await drop_database(url)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from the kernel's per-thread children lists."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = {int(k) for k in (task / "children").read_text().split()}
                todo.extend(kids - found)
                found |= kids
    return found


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports some of `pids` listen on (sockets matched to /proc/net/tcp by inode)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def until(what: str, check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        await asyncio.sleep(0.2)


async def posts_written(database: str) -> int:
    """Posts the demo has created through the API so far (0 while it is still seeding)."""
    url = with_database(make_settings().database_url, database)
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError):
        return 0
    try:
        return int(await conn.fetchval("SELECT count(*) FROM posts"))
    except asyncpg.PostgresError:
        return 0
    finally:
        await conn.close()


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    out: Path
    # Every process seen below the demo; killed at the end whatever happened.
    seen: set[int] = field(default_factory=set)


@contextlib.contextmanager
def demo_process(database: str, out: Path) -> Iterator[Demo]:
    """A long demo in its own session; what it started is killed if the test fails early."""
    cfg = make_settings()
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url}
    env.pop("AWS_ENDPOINT_URL", None)
    with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
        proc = subprocess.Popen(
            [socialpipe(), "demo", "--duration", "300", "--users", "50", "--rate", "600",
             "--updates", "10", "--database", database, "--out", str(out)],
            env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
        demo = Demo(proc, out)
        try:
            yield demo
        finally:
            for pid in [*descendants(proc.pid), *demo.seen, proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()


async def running_load(demo: Demo, database: str) -> tuple[set[int], set[int]]:
    """Wait until posts flow through the API; returns the demo's processes and listening ports."""

    async def flowing() -> bool:
        assert demo.proc.poll() is None, (demo.out / "stderr").read_text()[-2000:]
        return await posts_written(database) > 0

    await until("post through the API", flowing, 120)
    started = descendants(demo.proc.pid)
    demo.seen |= started
    assert len(started) >= CHILDREN, started
    ports = listening_ports(started | {demo.proc.pid})
    assert len(ports) >= 2, "the API and the emulator listen at least"
    return started, ports


def ctrl_c(demo: Demo) -> None:
    """SIGINT to the demo's whole process group, as a terminal sends it."""
    os.killpg(demo.proc.pid, signal.SIGINT)


async def exits_interrupted(demo: Demo, within: float) -> None:
    """The demo exits 130 within `within` seconds, says so in one line, with no traceback."""
    code = await asyncio.to_thread(demo.proc.wait, within)
    err = (demo.out / "stderr").read_text()
    assert code == 130, err[-3000:]
    assert "socialpipe: interrupted." in err.splitlines()
    assert "Traceback" not in err


def warnings_logged(out: Path) -> list[str]:
    """Warning and error lines the children logged (JSON lines, one file each)."""
    lines = (ln for log in (out / "logs").glob("*.log") for ln in log.read_text().splitlines())
    return [ln for ln in lines if '"level":"warning"' in ln or '"level":"error"' in ln]


def started_as(pids: set[int], word: str) -> int:
    """The one process among `pids` with `word` as an argument of its command line."""
    found = [p for p in pids if word in Path(f"/proc/{p}/cmdline").read_text().split("\0")]
    assert len(found) == 1, (word, found)
    return found[0]


def only_left(started: set[int], kept: set[int]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return {pid for pid in started if alive(pid)} == kept

    return check


async def test_ctrl_c_drains_every_started_process_and_exits_130(
    demo_database: str, tmp_path: Path
) -> None:
    with demo_process(demo_database, tmp_path) as demo:
        # GIVEN a demo whose load is flowing through the API
        started, ports = await running_load(demo, demo_database)
        # WHEN Ctrl-C reaches its process group, as from a terminal
        ctrl_c(demo)
        # THEN it exits 130 within the children's shutdown grace, saying it was interrupted
        await exits_interrupted(demo, within=60)
        # and nothing it started runs or listens any more
        assert {pid for pid in started if alive(pid)} == set()
        assert {port for port in ports if answers(port)} == set()
        # and the workers drained into a live emulator: no failed delete, no error
        assert warnings_logged(tmp_path) == []


async def test_second_ctrl_c_kills_a_child_stuck_in_its_drain(
    demo_database: str, tmp_path: Path
) -> None:
    with demo_process(demo_database, tmp_path) as demo:
        # GIVEN a running demo whose relay is stuck (stopped, so SIGTERM cannot end it)
        started, ports = await running_load(demo, demo_database)
        relay, emulator = (started_as(started, name) for name in ("relay", "loadtest.moto_child"))
        os.kill(relay, signal.SIGSTOP)
        # WHEN Ctrl-C stops the others (the emulator goes last) while the relay holds the drain
        ctrl_c(demo)
        await until("drain of the others", only_left(started, {relay, emulator}), 60)
        # AND a second Ctrl-C comes
        ctrl_c(demo)
        # THEN the demo exits 130 long before the relay's 30 s shutdown grace
        await exits_interrupted(demo, within=15)
        # and the relay was killed (the kernel may take a moment to tear it down)
        await until("end of the killed relay", only_left(started, set()), 5)
        assert {port for port in ports if answers(port)} == set()
