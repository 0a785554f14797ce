"""Settings for tests: the services on loopback, timings fit for tests, free ports.

Tests ask for these through the `settings_factory` and `port_factory` fixtures;
conftest modules and helper modules that are not tests import them from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from config.settings import Settings
from store.db import with_database

TEST_DB = f"socialpipe_test_{os.getpid()}"


def _redis_db() -> int:
    """A Redis logical database of this test process's own (1 to 15; 0 is left alone).

    Under pytest-xdist each worker takes the one its number gives (`gw0` → 1), so
    parallel workers never share one; a plain run picks by process id.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return 1 + int(worker[2:]) % 15
    return 1 + os.getpid() % 15


TEST_REDIS_DB = _redis_db()

PortFactory = Callable[[], int]


class SettingsFactory(Protocol):
    def __call__(self, **overrides: Any) -> Settings: ...


@cache
def environment_settings() -> Settings:
    """The settings the environment names (the services the test copies are made on)."""
    return Settings()


def redis_test_url() -> str:
    """The test Redis logical database on the environment's Redis server."""
    url = environment_settings().redis_url
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{TEST_REDIS_DB}"


def make_settings(**overrides: Any) -> Settings:
    """Settings pointing at the test services, with timings fit for tests."""
    values: dict[str, Any] = {
        "database_url": with_database(environment_settings().database_url, TEST_DB),
        "redis_url": redis_test_url(),
        "metrics_port": 0,
        "receive_wait_seconds": 1,
        "visibility_timeout": 10,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 2.0,
        "inprocess_retry_base_seconds": 0.01,
        "shutdown_grace_seconds": 5.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
