"""`socialpipe demo` end to end through the console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.db import drop_database, with_database
from tests.conftest import make_settings

DEMO_DB = f"socialpipe_demo_e2e_{os.getpid()}"


def socialpipe() -> str:
    found = shutil.which("socialpipe", path=str(Path(sys.executable).parent))
    assert found, "the socialpipe console script is not installed next to this Python"
    return found


@pytest.fixture
async def demo_database() -> AsyncIterator[str]:
    url = with_database(make_settings().database_url, DEMO_DB)
    yield DEMO_DB
    await drop_database(url)


def test_short_demo_reports_latency_and_no_dead_letters(demo_database: str) -> None:
    # GIVEN the test PostgreSQL and Redis
    cfg = make_settings()
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url}
    env.pop("AWS_ENDPOINT_URL", None)
    # WHEN a three-second demo runs through the CLI
    done = subprocess.run(
        [socialpipe(), "demo", "--duration", "3", "--users", "50", "--rate", "600",
         "--database", demo_database],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )  # fmt: skip
    # THEN it succeeds and prints the table and a JSON line with the figures
    assert done.returncode == 0, done.stderr[-3000:]
    assert "P95 post → last feed" in done.stdout
    report = json.loads(done.stdout.strip().splitlines()[-1])["demo"]
    assert report["posts"] == 30
    assert report["latency"]["count"] > 0
    assert report["latency"]["p95"] is not None
    assert report["feed_entries_written"] == report["feed_entries_expected"] > 0
    assert report["not_visible"] == 0
    assert report["dlq"] == 0
