"""The private servers stop, come back, keep or lose data as asked, and never outlive pytest."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import redis
import redis.asyncio as redis_asyncio

from tests.outage.servers import (
    OUTAGE_DATABASE,
    StoppablePostgres,
    StoppableRedis,
    pid_alive,
    port_answers,
    wait_until,
)
from tests.settings import SettingsFactory

pytestmark = pytest.mark.timeout(30)

_ROOT = Path(__file__).resolve().parents[2]


def assert_refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# --- Redis -------------------------------------------------------------------------------


def test_stopped_redis_refuses_connections_and_start_brings_it_back(
    stoppable_redis: StoppableRedis,
) -> None:
    port = stoppable_redis.port
    stoppable_redis.stop()

    assert not stoppable_redis.running
    assert_refused(port)
    with stoppable_redis.client() as client, pytest.raises(redis.ConnectionError):
        client.ping()

    stoppable_redis.start()
    assert stoppable_redis.port == port
    with stoppable_redis.client() as client:
        assert client.ping()


async def test_a_client_from_the_url_works_again_after_a_restart(
    stoppable_redis: StoppableRedis,
) -> None:
    client = redis_asyncio.Redis.from_url(stoppable_redis.url)
    try:
        await client.set("before", "1")
        stoppable_redis.stop()
        with pytest.raises(redis.ConnectionError):
            await client.get("before")
        stoppable_redis.start()
        assert await client.get("before") is None
    finally:
        await client.aclose()


def test_restart_keeping_data_keeps_every_key(stoppable_redis: StoppableRedis) -> None:
    with stoppable_redis.client() as client:
        client.set("plain", "v")
        client.zadd("feed:1", {"post-a": 1.0, "post-b": 2.0})

    stoppable_redis.restart(keep_data=True)

    with stoppable_redis.client() as client:
        assert client.get("plain") == b"v"
        assert client.zrange("feed:1", 0, -1) == [b"post-a", b"post-b"]


def test_restart_without_data_comes_back_empty(stoppable_redis: StoppableRedis) -> None:
    with stoppable_redis.client() as client:
        client.set("plain", "v")

    stoppable_redis.restart(keep_data=False)

    with stoppable_redis.client() as client:
        assert client.get("plain") is None
        assert client.dbsize() == 0


def test_a_kept_snapshot_is_loaded_once(stoppable_redis: StoppableRedis) -> None:
    with stoppable_redis.client() as client:
        client.set("plain", "v")
    stoppable_redis.stop(keep_data=True)
    stoppable_redis.start()
    stoppable_redis.stop()
    stoppable_redis.start()

    with stoppable_redis.client() as client:
        assert client.dbsize() == 0


def test_ensure_empty_revives_a_redis_left_stopped(outage_redis: StoppableRedis) -> None:
    outage_redis.ensure_empty()
    with outage_redis.client() as client:
        client.set("leftover", "1")
    outage_redis.stop(keep_data=True)

    outage_redis.ensure_empty()

    assert outage_redis.running
    with outage_redis.client() as client:
        assert client.dbsize() == 0


# --- PostgreSQL --------------------------------------------------------------------------


async def insert_user(url: str, email: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO users (email) VALUES ($1)", email)
    finally:
        await conn.close()


async def emails(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["email"] for r in await conn.fetch("SELECT email FROM users ORDER BY email")]
    finally:
        await conn.close()


async def test_stopped_postgres_refuses_connections_and_keeps_its_data(
    stoppable_postgres: StoppablePostgres, outage_database_url: str
) -> None:
    await insert_user(outage_database_url, "kept@example.com")

    stoppable_postgres.stop()

    assert not stoppable_postgres.running
    assert_refused(stoppable_postgres.port)
    with pytest.raises(OSError):
        await asyncpg.connect(outage_database_url, timeout=2)

    stoppable_postgres.start()
    assert await emails(outage_database_url) == ["kept@example.com"]


async def test_postgres_recovers_committed_rows_after_a_crash(
    stoppable_postgres: StoppablePostgres, outage_database_url: str
) -> None:
    await insert_user(outage_database_url, "crash@example.com")

    stoppable_postgres.restart("immediate")

    assert await emails(outage_database_url) == ["crash@example.com"]


async def test_restart_drops_open_connections(
    stoppable_postgres: StoppablePostgres, outage_database_url: str
) -> None:
    conn = await asyncpg.connect(outage_database_url)
    try:
        stoppable_postgres.restart()
        with pytest.raises((asyncpg.PostgresConnectionError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()


async def test_ensure_empty_revives_a_stopped_postgres_and_empties_its_tables(
    outage_postgres: StoppablePostgres,
) -> None:
    url = outage_postgres.url(OUTAGE_DATABASE)
    await outage_postgres.ensure_empty(OUTAGE_DATABASE)
    await insert_user(url, "leftover@example.com")
    # A session left inside a transaction holding a lock would block TRUNCATE.
    holder = await asyncpg.connect(url)
    await holder.execute("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE")
    try:
        await outage_postgres.ensure_empty(OUTAGE_DATABASE)
        outage_postgres.stop()
        await outage_postgres.ensure_empty(OUTAGE_DATABASE)
    finally:
        holder.terminate()

    assert outage_postgres.running
    assert await emails(url) == []
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
    finally:
        await conn.close()


# --- fixtures and clean-up ------------------------------------------------------------------


def test_outage_settings_point_at_the_private_servers(
    outage_settings: SettingsFactory,
    stoppable_redis: StoppableRedis,
    stoppable_postgres: StoppablePostgres,
) -> None:
    settings = outage_settings(log_level="ERROR")

    assert settings.redis_url == stoppable_redis.url
    assert settings.database_url == stoppable_postgres.url(OUTAGE_DATABASE)
    assert settings.log_level == "ERROR"
    assert settings.metrics_port == 0
    assert outage_settings(redis_url="redis://elsewhere:1/0").redis_url == "redis://elsewhere:1/0"


_OWNER = """
import json
from tests.outage.servers import StoppablePostgres, StoppableRedis
r, p = StoppableRedis(), StoppablePostgres()
r.start()
p.start()
print(json.dumps({"ports": [r.port, p.port], "folders": [str(r.folder), str(p.folder)]}))
input()
"""


def test_servers_do_not_outlive_a_killed_owner() -> None:
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER],
        cwd=_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())
        assert all(port_answers(port) for port in started["ports"])
        # SIGKILL: no finalizer, no atexit; only the watchdogs can clean up.
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 20
        wait_until(lambda: not any(map(port_answers, started["ports"])), deadline, "ports closed")
        folders = [Path(f) for f in started["folders"]]
        wait_until(lambda: not any(f.exists() for f in folders), deadline, "folders removed")
    finally:
        if pid_alive(owner.pid) and owner.poll() is None:
            owner.kill()
        owner.wait()
        for stream in (owner.stdin, owner.stdout):
            if stream:
                stream.close()
