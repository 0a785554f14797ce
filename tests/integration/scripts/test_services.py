"""`scripts/services.py`: embedded PostgreSQL and Redis when none answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from config.settings import Settings

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "services.py"
# Port 1 is privileged and unused on loopback: nothing answers there.
CLOSED = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/socialpipe_embedded",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def services(command: str, run_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), command, "--run-dir", str(run_dir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def exports(stdout: str) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in stdout.splitlines())
    return {name: value.strip("'") for name, value in pairs}


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def private_run_dir() -> Iterator[Path]:
    """A run folder outside pytest's base temp folder.

    The embedded PostgreSQL runs as an unprivileged user when the tests run as
    root, so every parent folder must stay traversable; pytest sets its base temp
    folder back to mode 0700 whenever a pytest session starts on the machine.
    """
    folder = Path(tempfile.mkdtemp(prefix="socialpipe-services-"))
    folder.chmod(0o755)
    try:
        yield folder / "run"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_unreachable_services_are_replaced_by_embedded_ones_that_stop(
    private_run_dir: Path,
) -> None:
    # GIVEN configured services that do not answer
    run_dir = private_run_dir
    # WHEN ensure runs
    started = services("ensure", run_dir, **CLOSED)
    try:
        # THEN it exports URLs of embedded servers that asyncpg and redis-py can use
        assert started.returncode == 0, started.stderr
        urls = exports(started.stdout)
        assert set(urls) == {"DATABASE_URL", "REDIS_URL"}
        assert urls["DATABASE_URL"].endswith("/socialpipe_embedded")
        conn = await asyncpg.connect(urls["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres")
        try:
            assert await conn.fetchval("SELECT 1 + 1") == 2
        finally:
            await conn.close()
        client = redis_asyncio.Redis.from_url(urls["REDIS_URL"])
        try:
            assert await client.set("probe", "1")
            assert await client.get("probe") == b"1"
        finally:
            await client.aclose()
        # AND a second ensure reuses the running servers
        again = services("ensure", run_dir, **CLOSED)
        assert exports(again.stdout) == urls
    finally:
        stopped = services("stop", run_dir)
    # AND stop shuts both down
    assert stopped.returncode == 0, stopped.stderr
    assert not answers(urls["DATABASE_URL"])
    assert not answers(urls["REDIS_URL"])


def test_answering_services_are_left_alone(tmp_path: Path) -> None:
    # GIVEN the configured services answer (the suite's own, real or embedded)
    configured = Settings()
    env = {"DATABASE_URL": configured.database_url, "REDIS_URL": configured.redis_url}
    if not (answers(env["DATABASE_URL"]) and answers(env["REDIS_URL"])):
        pytest.skip("the configured services do not answer")
    # WHEN ensure runs
    result = services("ensure", tmp_path / "run", **env)
    # THEN it exports nothing and starts nothing
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "run" / "pg").exists()
