"""`socialpipe demo` end to end through the console script: API, relay and workers."""

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
from tests.settings import SettingsFactory

DEMO_DB = f"socialpipe_demo_e2e_{os.getpid()}"


def socialpipe() -> str:
    found = shutil.which("socialpipe", path=str(Path(sys.executable).parent))
    assert found, "the socialpipe console script is not installed next to this Python"
    return found


@pytest.fixture
async def demo_database(settings_factory: SettingsFactory) -> AsyncIterator[str]:
    url = with_database(settings_factory().database_url, DEMO_DB)
    yield DEMO_DB
    await drop_database(url)


def test_short_demo_goes_through_the_api_and_reports_both_latencies(
    demo_database: str, tmp_path: Path, settings_factory: SettingsFactory
) -> None:
    # GIVEN the test PostgreSQL and Redis, and no SQS endpoint (the demo starts moto)
    cfg = settings_factory()
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url}
    env.pop("AWS_ENDPOINT_URL", None)
    # WHEN a three-second demo runs through the CLI
    done = subprocess.run(
        [socialpipe(), "demo", "--duration", "3", "--users", "50", "--rate", "600",
         "--updates", "10", "--database", demo_database, "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    # THEN it succeeds and prints the table, example feeds, a search and a JSON line
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "posts → all feeds" in done.stdout
    assert "feed of a user with" in done.stdout
    assert 'search "Engineer":' in done.stdout
    report = json.loads(done.stdout.strip().splitlines()[-1])["demo"]
    posts, profiles = report["streams"]["posts"], report["streams"]["profile updates"]
    assert report["scenario"]["mode"] == "api"
    assert posts["sent"] == posts["offered"] == 30
    assert profiles["sent"] == profiles["offered"] == 30
    # every post with connections was seen in every feed, every update searchable
    assert posts["measured"] > 0 and posts["not_visible"] == 0
    assert profiles["measured"] == 30 and profiles["not_visible"] == 0
    assert report["dlq"] == {"feed-fanout": 0, "search-indexing": 0, "notifications": 0}
    assert Path(report["picture"]).read_bytes()[:4] == b"\x89PNG"
    # and every process it started was stopped: the relay and the API logged no errors
    assert report["worker_error_lines"]["api"] == 0
    assert report["worker_error_lines"]["relay"] == 0
    # and the feed worker read connection lists through the Connections Service it started
    assert report["worker_error_lines"]["connections-service"] == 0
