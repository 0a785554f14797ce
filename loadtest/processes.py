"""The system under test as child processes: workers, the relay and the API.

Each process is the real `socialpipe` command with its environment pointing at
the run's services, as it would be deployed: one pod, one process. Logs go to a
file per process (JSON lines), so the terminal shows only the run's progress,
and the error lines can be counted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from config.settings import Settings
from loadtest.emulator import free_port

START_TIMEOUT: Final = 60.0
CONNECTIONS_SERVICE: Final = "connections-service"
# Children that other children call: stopped after those callers (`ProcessGroup.stop`).
SERVICES: Final = frozenset({CONNECTIONS_SERVICE})


class ProcessError(Exception):
    """A child process did not start; the message names it and quotes its last log line."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    health_url: str | None
    proc: asyncio.subprocess.Process | None = None
    log: IO[bytes] | None = field(default=None, repr=False)


def socialpipe_command() -> str:
    """The console script next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "socialpipe"
    if beside.exists():
        return str(beside)
    found = shutil.which("socialpipe")
    if found is None:
        raise ProcessError("The socialpipe command is not installed; run `make venv`.")
    return found


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child's `Settings` equal to `settings` (plus `extra`)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(name.upper(), None)
        else:
            env[name.upper()] = str(value)
    env.update(extra)
    return env


class ProcessGroup:
    """Starts children, waits until each answers its health check, stops them all on exit."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._ports: dict[str, int] = {}
        self.command = socialpipe_command()

    def add_worker(self, pipeline: str, index: int, concurrency: int | None = None) -> None:
        extra = ["--concurrency", str(concurrency)] if concurrency else []
        self._add(f"worker-{pipeline}-{index}", ["worker", pipeline, *extra])

    def add_relay(self) -> None:
        self._add("relay", ["relay"])

    def add_connections_service(self) -> None:
        """The gRPC Connections Service, on the settings' CONNECTIONS_SERVICE_ADDR."""
        self._add(CONNECTIONS_SERVICE, ["connections-service"])

    def add_api(self) -> str:
        """Adds the API on a free loopback port; returns its GraphQL URL."""
        port = free_port()
        name = "api"
        args = ["api", "--host", "127.0.0.1", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/healthz"
        self.children.append(Child(name, args, self.log_dir / f"{name}.log", health))
        return f"http://127.0.0.1:{port}/graphql"

    def _add(self, name: str, args: list[str]) -> None:
        port = free_port()
        health = f"http://127.0.0.1:{port}/healthz"
        self.children.append(Child(name, args, self.log_dir / f"{name}.log", health))
        self._ports[name] = port

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            env = settings_env(
                self.settings,
                METRICS_PORT=str(self._ports.get(child.name, 0)),
                METRICS_HOST="127.0.0.1",
                PYTHONUNBUFFERED="1",
            )
            child.log = child.log_path.open("wb")
            child.proc = await asyncio.create_subprocess_exec(
                self.command,
                *child.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=child.log,
                stderr=child.log,
                start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
            )
        await asyncio.gather(*(self._wait_healthy(c) for c in self.children))

    async def _wait_healthy(self, child: Child) -> None:
        if child.health_url is None:
            return
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert child.proc is not None
            if child.proc.returncode is not None:
                raise ProcessError(f"{child.name} exited at start: {last_line(child.log_path)}")
            if await asyncio.to_thread(_answers, child.health_url):
                return
            await asyncio.sleep(0.2)
        raise ProcessError(f"{child.name} did not become healthy within {START_TIMEOUT:.0f} s.")

    async def stop(self, grace: float) -> list[str]:
        """SIGTERM everyone, wait up to `grace`, then kill; returns who had to be killed.

        A service other children call (the Connections Service) stops last: it
        keeps answering until the workers that read from it have drained, so
        their last messages do not meet it gone. Cancelled while waiting (a
        second Ctrl-C cancels every task), it kills whoever is still draining
        before it gives way, so no child outlives us.
        """
        running = [c for c in self.children if c.proc and c.proc.returncode is None]
        services = [c for c in running if c.name in SERVICES]
        clients = [c for c in running if c.name not in SERVICES]
        for child in clients:
            self._signal(child, signal.SIGTERM)
        killed: list[str] = []
        try:
            if services:
                workers = [c for c in clients if c.name.startswith("worker-")]
                await self._reap(workers, grace, killed)
                for child in services:
                    self._signal(child, signal.SIGTERM)
            await self._reap(running, grace, killed)
        except asyncio.CancelledError:
            for child in running:
                self._signal(child, signal.SIGKILL)
            raise
        finally:
            for child in self.children:
                if child.log:
                    child.log.close()
        return killed

    async def _reap(self, children: list[Child], grace: float, killed: list[str]) -> None:
        """Wait for each of `children` to exit, up to `grace`; kill (and note) the rest."""
        for child in children:
            assert child.proc is not None
            try:
                await asyncio.wait_for(child.proc.wait(), timeout=grace)
            except TimeoutError:
                if child.name not in killed:
                    killed.append(child.name)
                self._signal(child, signal.SIGKILL)
                await child.proc.wait()

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        if child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signum)

    def pids(self, prefix: str = "") -> list[int]:
        return [c.proc.pid for c in self.children if c.proc and c.name.startswith(prefix)]

    def error_lines(self) -> dict[str, int]:
        """Per child, how many log lines are at error level."""
        return {c.name: count_errors(c.log_path) for c in self.children}

    def metrics_urls(self) -> Mapping[str, str]:
        return {n: f"http://127.0.0.1:{p}/metrics" for n, p in self._ports.items()}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][-400:] if lines else "no output"


def count_errors(path: Path) -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for ln in text.splitlines() if '"level":"error"' in ln.replace(" ", ""))


@contextlib.asynccontextmanager
async def running(group: ProcessGroup, grace: float) -> AsyncIterator[ProcessGroup]:
    """Start the group and stop it on the way out, whatever happened (Ctrl-C included)."""
    try:
        await group.start()
        yield group
    finally:
        await asyncio.shield(group.stop(grace))
